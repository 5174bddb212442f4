# What to explain: attribute texts (section V-B), word/phrase triplets (V-A), captions (V-C), and the job lists.
DESIGN = f"{RESULTS}/design"
DESIGN_FILES = {name: f"{DESIGN}/{name}.tsv" for name in
                ("attributes", "addibility", "captions", "images", "image_jobs", "text_jobs")}


rule study_design:
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
        data_dir=DATA_DIR,
    log:
        "logs/study_design.log",
    script:
        "../scripts/study_design.py"
