from _common import setup_logging, write_manifest

from analysis.pipeline import concreteness_figures, concreteness_summary, concreteness_tables
from analysis.report import save_artifacts

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
study = concreteness_summary(snakemake.input.shards, top_n=snakemake.params.top_n)  # noqa: F821
written = save_artifacts(snakemake.params.reports, concreteness_tables(study),  # noqa: F821
                         concreteness_figures(study))
write_manifest(snakemake.output.manifest, written)  # noqa: F821
log.info("%d words analysed", len(study.words))
