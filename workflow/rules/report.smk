# The self-contained HTML report: every table and figure of every head mode side by side, findings written from
# the tables, the paper's numbers beside this run's (analysis/paper_reference.yaml), and the run header.
ANALYSES = ["attributes", "addibility", "concreteness", "galleries"]
COMMON = ["toy_sanity"] if TOY and config["toyworld"]["sanity_scenes"] else []


rule report:
    conda:
        "../../environment.yml"
    input:
        manifests=expand(f"{RESULTS}/analysis/{{heads}}/{{name}}.json", heads=HEADS, name=ANALYSES),
        common=expand(f"{RESULTS}/analysis/{{name}}.json", name=COMMON),
        design_notes=f"{DESIGN}/design.json",
        design=list(DESIGN_FILES.values()),
        model=model_checkpoint(),
        **PAPER_REPORT_INPUTS,
        paper_reference="analysis/paper_reference.yaml",
    output:
        html=f"{REPORTS}/report.html",
        design_summary=f"{REPORTS}/tables/design_summary.csv",
        paper_comparison=f"{REPORTS}/tables/paper_comparison.csv",
        power=f"{REPORTS}/tables/power.csv",
    params:
        model=model_params(),
        method=config["method"],
        heads=HEADS,
        config=config,
        config_hash=CONFIG_HASH,
        data=f"toy world {config['toyworld']}" if TOY else "COCO Karpathy val, CLEVR v1.0 val (SAM masks)",
    log:
        "logs/report.log",
    script:
        "../scripts/report.py"
