# Grad-ECLIP explanations in shards of images: image maps (patch-grid npz) and word importances (CSV).
ON_GPU = config["model"]["device"].startswith("cuda")


rule explain_images:
    """Heat maps of each image for every text the studies need (one image forward, one batched backward)."""
    conda:
        "../../environment.yml"
    input:
        jobs=f"{RESULTS}/design/image_jobs.tsv",
        model=model_checkpoint(),
    output:
        f"{RESULTS}/explanations/{{heads}}/images/shard_{{shard}}.npz",
    params:
        model=model_params(),
        method=lambda wc: dict(config["method"], heads=wc.heads),  # {heads}: one of config method.heads
        images_per_shard=config["shards"]["images_per_shard"],
    wildcard_constraints:
        heads=HEADS_PATTERN,
    threads: 2
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=1 if ON_GPU else 0,
    log:
        "logs/explain_images/{heads}/shard_{shard}.log",
    script:
        "../scripts/explain_images.py"


rule explain_texts:
    """Word importances of each caption for its own image."""
    conda:
        "../../environment.yml"
    input:
        jobs=f"{RESULTS}/design/text_jobs.tsv",
        model=model_checkpoint(),
    output:
        f"{RESULTS}/explanations/{{heads}}/texts/shard_{{shard}}.csv",
    params:
        model=model_params(),
        method=lambda wc: dict(config["method"], heads=wc.heads),  # {heads}: one of config method.heads
        images_per_shard=config["shards"]["images_per_shard"],
    wildcard_constraints:
        heads=HEADS_PATTERN,
    threads: 2
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=1 if ON_GPU else 0,
    log:
        "logs/explain_texts/{heads}/shard_{shard}.log",
    script:
        "../scripts/explain_texts.py"


rule explanations:
    """Every explanation shard of the design, and nothing after them: the target of a run that only explains (e.g. a
    second model on the same design: make paper-smoke runs RN50 this way)."""
    input:
        image_shard_files,
        text_shard_files,
