# The faithfulness study (paper section IV, issue 34): its own target, `snakemake faithfulness` (not part of `all`:
# make run keeps its time). One job per task, then the tables, the figures and reports/faithfulness.html.
FAITHFULNESS = config.get("faithfulness") or {}
FAITHFULNESS_TASKS = ["classification", "retrieval", "text", "localisation", "layers", "critique"]
FAITHFULNESS_TABLES = ["faithfulness_image", "faithfulness_text", "localization", "layers", "score_gap",
                       "randomisation"]


wildcard_constraints:
    task="|".join(FAITHFULNESS_TASKS),


rule faithfulness_task:
    """One task of the study on the toy world (classification, retrieval, text, localisation, layers, critique):
    per-image AUCs, mean curves, pointing and energy share, score gaps and randomisation correlations."""
    conda:
        "../../environment.yml"
    input:
        model=model_checkpoint(),
    output:
        directory(f"{RESULTS}/faithfulness/{{task}}"),
    params:
        model=model_params(),
        options=FAITHFULNESS,
        image_size=config["toyworld"]["image_size"] if TOY else None,
    threads: 1
    resources:
        mem_mb=4000,
    log:
        "logs/faithfulness/{task}.log",
    script:
        "../scripts/faithfulness_task.py"


rule faithfulness:
    """The tables with 95% CIs over images and paired tests against Grad-ECLIP, Fig. 8's curves and the report page
    with the section 'Whose score does the map explain?'."""
    conda:
        "../../environment.yml"
    input:
        tasks=expand(f"{RESULTS}/faithfulness/{{task}}", task=FAITHFULNESS_TASKS),
        model=model_checkpoint(),
    output:
        html=f"{REPORTS}/faithfulness.html",
        tables=[f"{REPORTS}/tables/{name}.csv" for name in FAITHFULNESS_TABLES],
    params:
        model=model_params(),
        options=FAITHFULNESS,
        config_hash=CONFIG_HASH,
        config=config,
    log:
        "logs/faithfulness/report.log",
    script:
        "../scripts/faithfulness_report.py"
