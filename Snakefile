# gradeclip-study: from raw data to reports/ (see README "The study workflow").
#   snakemake --cores 2                                   the toy world, offline (config/config.yaml)
#   snakemake --cores 8 --configfile config/paper.yaml    the paper's setup (COCO, CLEVR, SAM, ViT-B-16/openai)
#   snakemake --profile workflow/profiles/slurm ...       the same DAG on a SLURM cluster
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


# On a cluster these run on the login node: downloads need the internet, the report is quick.
localrules:
    all,
    download,
    extract,
    report,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/design.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"


if TOY or config.get("faithfulness"):  # section IV: the toy world, or paper mode with a faithfulness block

    include: "workflow/rules/faithfulness.smk"


rule all:
    input:
        f"{REPORTS}/report.html",
    default_target: True
