from pathlib import Path

from _common import setup_logging

from analysis.design import StudyDesign
from analysis.findings import findings, load_paper_reference, methods_notes, paper_comparison, power_table, toy_banner
from analysis.report import load_artifacts, render_report, run_header, save_artifacts
from analysis.tables import read_table

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
p = snakemake.params  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
# the tables and figures of each head mode (inputs heads_<mode>: <reports>/<mode>/...), and the run-wide ones
modes = {h: load_artifacts(inp[f"heads_{h}"]) for h in p.heads}
tables, figures = load_artifacts(inp.common)
# the design's own tables sit beside its notes; their row and image counts head the report, its notes follow the header
design = StudyDesign.read(Path(inp.design_notes).parent)
tables["design_summary"] = design.summary()
if "coco_triplets" in inp.keys():  # paper mode: the selected §V-A triplets
    tables["coco_triplets"] = read_table(inp.coco_triplets)
toy_model = p.model["name"].startswith("gradeclip-toy")
ref = load_paper_reference(inp.paper_reference)
mode_tables = {h: t for h, (t, _) in modes.items()}
power = power_table(mode_tables, ref)
comparison = paper_comparison(mode_tables, ref, toy=toy_model, power=power)
tables.update(paper_comparison=comparison, power=power)
save_artifacts(Path(out.html).parent, tables={k: tables[k] for k in ("design_summary", "paper_comparison", "power")},
               declared=out)
header = run_header(p.model["name"], p.model["pretrained"], data=p.data, config=p.config,
                    extra={"config hash": p.config_hash, "method": p.method, "head modes": ", ".join(p.heads),
                           "device": p.model["device"]},
                    outputs=[Path(out.html).parent])  # the reports folder this run rewrites is not the code
render_report(out.html, tables, figures, header=header, notes=design.notes, modes=modes,
              findings=findings(mode_tables, tables, ref, toy=toy_model, comparison=comparison),
              banner=toy_banner(mode_tables) if toy_model else None, methods=methods_notes(ref))
log.info("report with %d run-wide tables and %s per head mode", len(tables),
         {h: (len(t), len(f)) for h, (t, f) in modes.items()})
