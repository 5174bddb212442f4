import json

from _common import setup_logging

from analysis.report import load_artifacts, render_report, run_header

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
p = snakemake.params  # noqa: F821
tables, figures = load_artifacts(snakemake.input.manifests)  # noqa: F821
header = run_header(p.model["name"], p.model["pretrained"], data=p.data, config=p.config,
                    extra={"config hash": p.config_hash, "method": p.method, "device": p.model["device"]})
notes = json.load(open(snakemake.input.design_notes)).get("notes", [])  # noqa: F821
render_report(snakemake.output[0], tables, figures, header=header, notes=notes)  # noqa: F821
log.info("report with %d tables and %d figures", len(tables), len(figures))
