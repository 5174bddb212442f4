"""The faithfulness study's tables, figures and report page (rule faithfulness)."""
from pathlib import Path

from _common import setup_logging

from analysis.faithfulness import build_tables, display_tables, read_task, report_findings
from analysis.report import render_report, run_header, save_artifacts
from gradeclip.faithfulness import REFERENCE_METHOD

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
tasks = {Path(folder).name: read_task(folder) for folder in inp.tasks}
tables, figures = build_tables(tasks, REFERENCE_METHOD)
reports = Path(out.html).parent
save_artifacts(reports, tables=tables, figures=figures, declared=out)  # exactly the rule's declared tables, figures
data = (f"toy world, {p.options['n_images']} images per task" if p.data["kind"] == "toy" else
        f"ImageNet val ({p.data['imagenet_root']}), COCO Karpathy val ({p.data['coco_root']}), "
        f"{p.options['n_images']} images per task")
header = run_header(p.model["name"], p.model["pretrained"], data=data,
                    config=p.config, extra={"config hash": p.config_hash, "faithfulness": p.options},
                    outputs=[reports])
render_report(out.html, display_tables(tables), figures, header=header,  # captions: analysis/captions/<key>.rst
              title="Faithfulness and localisation of explanation maps (§IV)",
              findings=report_findings(tables, REFERENCE_METHOD))
log.info("faithfulness report: %d tables, %d figures", len(tables), len(figures))
