from pathlib import Path

from _common import setup_logging

from analysis.design import StudyDesign, read_table
from analysis.report import load_artifacts, render_report, run_header, save_artifacts

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
p = snakemake.params  # noqa: F821
out = snakemake.output  # noqa: F821
tables, figures = load_artifacts(snakemake.input.manifests)  # noqa: F821
# the design's own tables sit beside its notes; their row and image counts head the report, its notes follow the header
design = StudyDesign.read(Path(snakemake.input.design_notes).parent)  # noqa: F821
tables["design_summary"] = design.summary()
if "coco_triplets" in snakemake.input.keys():  # noqa: F821  (paper mode: the selected §V-A triplets)
    tables["coco_triplets"] = read_table(snakemake.input.coco_triplets)  # noqa: F821
save_artifacts(Path(out.design_summary).parents[1], tables={"design_summary": tables["design_summary"]})
header = run_header(p.model["name"], p.model["pretrained"], data=p.data, config=p.config,
                    extra={"config hash": p.config_hash, "method": p.method, "device": p.model["device"]})
render_report(out.html, tables, figures, header=header, notes=design.notes)
log.info("report with %d tables and %d figures", len(tables), len(figures))
