# The self-contained HTML report: every table and figure of every head mode side by side, findings written from
# the tables, the paper's numbers beside this run's (analysis/paper_reference.yaml), and the run header.


rule report:
    conda:
        "../../environment.yml"
    input:
        # the tables and figures of the §V analyses, per head mode (inputs heads_<mode>), and the run-wide ones
        **{f"heads_{heads}": study_artifact_files(heads) for heads in HEADS},
        common=[str(f) for f in AR.files(REPORTS, AR.TOY_SANITY)] if TOY_SANITY else [],
        design_notes=f"{DESIGN}/design.json",
        design=list(DESIGN_FILES.values()),
        model=model_checkpoint(),
        **PAPER_REPORT_INPUTS,
        paper_reference="analysis/paper_reference.yaml",
    output:
        html=f"{REPORTS}/report.html",
        **artifact_outputs(REPORTS, AR.REPORT, "Run"),
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
