# The faithfulness study (paper section IV, issue 34): its own target, `snakemake faithfulness` (not part of `all`:
# make run keeps its time), on the toy world or, in paper mode, on ImageNet val and COCO. One job per task, then the
# tables, the figures and reports/faithfulness.html.
FAITHFULNESS = config.get("faithfulness") or {}
# Paper mode: ImageNet val (data.roots.imagenet + data.imagenet_labels) for classification, COCO Karpathy val and
# instances (the study's dataset roots or extractions) for retrieval and localisation.
FAITHFULNESS_DATA = (
    {"kind": "toy", "image_size": config["toyworld"]["image_size"]}
    if TOY
    else {
        "kind": "paper",
        "imagenet_root": ROOTS.get("imagenet"),
        "imagenet_labels": DATA.get("imagenet_labels"),
        **{k: DATASET_PATHS[k] for k in ("coco_root", "instances_json", "karpathy_json")},
    }
)
FAITHFULNESS_TASKS = ["classification", "retrieval", "text", "localisation", "layers", "critique"]
# its tables and figures (analysis/artifacts.py): Fig. 8's classification curves per target, by colour on the toy world
FAITHFULNESS_ARTIFACTS = AR.faithfulness(FAITHFULNESS.get("targets", ["ground_truth"]), toy=TOY)


wildcard_constraints:
    task="|".join(FAITHFULNESS_TASKS),


rule faithfulness_task:
    """One task of the study (classification, retrieval, text, localisation, layers, critique): per-image AUCs,
    mean curves, pointing and energy share, score gaps and randomisation correlations."""
    conda:
        "../../environment.yml"
    input:
        unpack(faithfulness_inputs),
    output:
        directory(f"{RESULTS}/faithfulness/{{task}}"),
    params:
        model=model_params(),
        options=FAITHFULNESS,
        data=FAITHFULNESS_DATA,
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
    output:
        html=f"{REPORTS}/faithfulness.html",
        **artifact_outputs(REPORTS, FAITHFULNESS_ARTIFACTS, "IV faithfulness"),
    params:
        model=model_params(),
        options=FAITHFULNESS,
        config_hash=CONFIG_HASH,
        data=FAITHFULNESS_DATA,
        config=config,
    log:
        "logs/faithfulness/report.log",
    script:
        "../scripts/faithfulness_report.py"
