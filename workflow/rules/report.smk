# The self-contained HTML report: every table and figure, galleries, and the run header.
ANALYSES = ["attributes", "addibility", "concreteness", "galleries"]
if TOY and config["toyworld"]["sanity_scenes"]:
    ANALYSES.append("toy_sanity")


rule report:
    conda:
        "../../environment.yml"
    input:
        manifests=expand(f"{RESULTS}/analysis/{{name}}.json", name=ANALYSES),
        design_notes=f"{DESIGN}/design.json",
        design=list(DESIGN_FILES.values()),
        model=model_checkpoint(),
        **PAPER_REPORT_INPUTS,
    output:
        html=f"{REPORTS}/report.html",
        design_summary=f"{REPORTS}/tables/design_summary.csv",
    params:
        model=model_params(),
        method=config["method"],
        config=config,
        config_hash=CONFIG_HASH,
        data=f"toy world {config['toyworld']}" if TOY else "COCO Karpathy val, CLEVR v1.0 val (SAM masks)",
    log:
        "logs/report.log",
    script:
        "../scripts/report.py"
