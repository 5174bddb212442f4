from _common import setup_logging

from analysis.findings import equivalence_margins, load_paper_reference
from analysis.tables import read_table
from analysis.pipeline import attribute_summary
from analysis.report import save_artifacts

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
# the Appendix-B "no influence" claim is tested for equivalence within a margin taken from the paper's Table IX
margins = equivalence_margins(load_paper_reference())
summary = attribute_summary(snakemake.input.shards, read_table(snakemake.input.attributes),  # noqa: F821
                            equivalence_margins=margins)
# writes exactly the rule's declared tables and figures (analysis/artifacts.py), or stops naming the key
save_artifacts(snakemake.params.reports, summary.tables(), summary.figures(),  # noqa: F821
               declared=snakemake.output)  # noqa: F821
log.info("equivalence margins %s; Table IX:\n%s", margins, summary.table_ix.to_string())
