# What to explain: attribute texts (section V-B), word/phrase triplets (V-A), captions (V-C), and the job lists.
DESIGN_FILES = {name: f"{DESIGN}/{name}.tsv" for name in
                ("attributes", "addibility", "captions", "images", "image_jobs", "text_jobs")}


rule coco_triplets:
    """Section V-A triplets selected from the study's COCO images (Karpathy val split, COCO instance categories),
    written as a reviewable manifest with a stamp of its inputs' SHA-256 beside it (paper mode)."""
    conda:
        "../../environment.yml"
    input:
        layout=f"{RESULTS}/data/coco_layout.json",
    output:
        manifest=f"{DESIGN}/coco_triplets.csv",
        stamp=f"{DESIGN}/coco_triplets.json",
    params:
        paths=DATASET_PATHS,
        coco=config.get("coco"),
    log:
        "logs/coco_triplets.log",
    script:
        "../scripts/coco_triplets.py"


# A checkpoint: the number of explanation shards follows the images the design selected (its job lists).
checkpoint study_design:
    conda:
        "../../environment.yml"
    input:
        unpack(design_inputs),
    output:
        **DESIGN_FILES,
        notes=f"{DESIGN}/design.json",
    params:
        toy=TOY,
        seed=config["toyworld"]["seed"] if TOY else config["coco"]["seed"],
        coco=config.get("coco"),
        clevr=config.get("clevr"),
        paths=DATASET_PATHS,
    log:
        "logs/study_design.log",
    script:
        "../scripts/study_design.py"
