from _common import setup_logging, write_manifest

from analysis.design import read_table
from analysis.pipeline import attribute_summary
from analysis.report import save_artifacts

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
summary = attribute_summary(snakemake.input.shards, read_table(snakemake.input.attributes))  # noqa: F821
written = save_artifacts(snakemake.params.reports, summary.tables(), summary.figures())  # noqa: F821
write_manifest(snakemake.output.manifest, written)  # noqa: F821
log.info("Table IX:\n%s", summary.table_ix.to_string())
