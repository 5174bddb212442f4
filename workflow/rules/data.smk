# Data: the toy world (offline default), or the paper's downloads (checksummed) and SAM masks for CLEVR.
from gradeclip.downloads import RESOURCES

DATA_DIR = config.get("data", {}).get("dir", "data/external")
# What the study needs from each archive (None = everything).
EXTRACT_MEMBERS = {
    "coco_val2014": None,
    "coco_annotations2014": ["annotations/instances_val2014.json"],
    "karpathy_captions": ["dataset_coco.json"],
    "clevr_v1": ["CLEVR_v1.0/images/val/", "CLEVR_v1.0/scenes/CLEVR_val_scenes.json"],
}
CLEVR_DIR = f"{DATA_DIR}/extracted/clevr_v1/CLEVR_v1.0"


rule toy_scenes:
    """Render the study's toy-world scenes: images, exact instance masks, CLEVR-schema scenes JSON."""
    conda:
        "../../environment.yml"
    output:
        scenes=f"{RESULTS}/toyworld/scenes/TOY_{SPLIT}_scenes.json",
        images=directory(f"{RESULTS}/toyworld/images/{SPLIT}"),
        masks=directory(f"{RESULTS}/toyworld/masks/{SPLIT}"),
    params:
        toyworld={k: config["toyworld"][k] for k in ("seed", "n_scenes", "image_size", "min_objects", "max_objects")},
        split=SPLIT,
    log:
        "logs/toy_scenes.log",
    script:
        "../scripts/toy_scenes.py"


rule download:
    """Download one registered resource (gradeclip/downloads.py: URL, checksums), or take the local copy named in
    config data.local_copies; the file appears only once its checksum matches."""
    conda:
        "../../environment.yml"
    output:
        f"{DATA_DIR}/downloads/{{resource}}.done",
    params:
        local_copies=config.get("data", {}).get("local_copies", {}),
        dest_dir=lambda wc, output: parent_dir(output[0]),
    wildcard_constraints:
        resource="|".join(RESOURCES),
    resources:
        downloads=1,
    log:
        "logs/download/{resource}.log",
    script:
        "../scripts/download.py"


rule extract:
    """Unpack the parts of a downloaded archive the study uses (atomic: the folder appears complete or not at all)."""
    conda:
        "../../environment.yml"
    input:
        f"{DATA_DIR}/downloads/{{resource}}.done",
    output:
        directory(f"{DATA_DIR}/extracted/{{resource}}"),
    params:
        members=lambda wc: EXTRACT_MEMBERS[wc.resource],
    wildcard_constraints:
        resource="|".join(EXTRACT_MEMBERS),
    log:
        "logs/extract/{resource}.log",
    script:
        "../scripts/extract.py"


rule sam_masks:
    """SAM point prompts at each CLEVR object's pixel_coords (best of 3 masks by predicted IoU, overlaps resolved
    by depth), one instance-id PNG per image, and a contact sheet for the manual check."""
    conda:
        "../../environment.yml"
    input:
        clevr=f"{DATA_DIR}/extracted/clevr_v1",
        checkpoint=f"{DATA_DIR}/downloads/sam_vit_h.done",
    output:
        masks=directory(f"{RESULTS}/clevr_masks"),
        contact_sheet=report(f"{RESULTS}/clevr_masks_contact_sheet.png", caption="../report/sam_contact_sheet.rst",
                             category="Data"),
    params:
        n_images=config.get("clevr", {}).get("n_images", 50),
        seed=config.get("clevr", {}).get("seed", 0),
        model_type=config.get("sam", {}).get("model_type", "vit_h"),
        clevr_dir=CLEVR_DIR,
    threads: 4
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=1,
    log:
        "logs/sam_masks.log",
    script:
        "../scripts/sam_masks.py"
