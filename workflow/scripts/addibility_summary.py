from _common import setup_logging

from analysis.tables import read_table
from analysis.pipeline import addibility_summary
from analysis.report import save_artifacts

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
summary = addibility_summary(snakemake.input.shards, read_table(snakemake.input.addibility))  # noqa: F821
# writes exactly the rule's declared tables and figures (analysis/artifacts.py), or stops naming the key
save_artifacts(snakemake.params.reports, summary.tables(), summary.figures(),  # noqa: F821
               declared=snakemake.output)  # noqa: F821
log.info("Table VIII:\n%s", summary.table_viii.to_string())
