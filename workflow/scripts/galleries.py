from _common import setup_logging

from analysis.pipeline import study_galleries
from analysis.report import save_artifacts

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
galleries = study_galleries(snakemake.params.design_dir, snakemake.input.shards,  # noqa: F821
                            n_images=snakemake.params.n, words=snakemake.input.words)  # noqa: F821
save_artifacts(snakemake.params.reports, galleries=galleries, declared=snakemake.output)  # noqa: F821
log.info("galleries: %s", ", ".join(galleries))
