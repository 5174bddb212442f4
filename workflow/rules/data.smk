# Data: the toy world (offline default), or the paper's datasets: roots already on disk (config data.roots), else
# checksummed downloads and extractions; a layout check of each; SAM masks for CLEVR.
from gradeclip.downloads import RESOURCES, download_finished, is_extracted

# What the study needs from each archive (None = everything).
EXTRACT_MEMBERS = {
    "coco_val2014": None,
    "coco_annotations2014": ["annotations/instances_val2014.json"],
    "karpathy_captions": ["dataset_coco.json"],
    "clevr_v1": ["CLEVR_v1.0/images/val/", "CLEVR_v1.0/scenes/CLEVR_val_scenes.json"],
}
# A finished, checksum-verified download or extraction is data, not a product to rebuild: it leaves the rules'
# domain, so that a code change never plans tens of GB again. Delete its .done marker or folder to redo it.
PENDING_DOWNLOADS = [r for r in RESOURCES if not download_finished(f"{DATA_DIR}/downloads/{r}.done", r)]
PENDING_EXTRACTS = [r for r in EXTRACT_MEMBERS if not is_extracted(f"{EXTRACTED}/{r}")]
MATCHES_NOTHING = "(?!)"


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
        local_copies=DATA.get("local_copies", {}),
        dest_dir=lambda wc, output: parent_dir(output[0]),
    wildcard_constraints:
        resource="|".join(PENDING_DOWNLOADS) or MATCHES_NOTHING,
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
        directory(f"{EXTRACTED}/{{resource}}"),
    params:
        members=lambda wc: EXTRACT_MEMBERS[wc.resource],
    wildcard_constraints:
        resource="|".join(PENDING_EXTRACTS) or MATCHES_NOTHING,
    log:
        "logs/extract/{resource}.log",
    script:
        "../scripts/extract.py"


rule dataset_layout:
    """Check a dataset (a configured root or an extracted archive) against the layout the study reads: every image
    the study may use is there (missing files are named), with counts."""
    conda:
        "../../environment.yml"
    input:
        unpack(dataset_sources),
    output:
        f"{RESULTS}/data/{{dataset}}_layout.json",
    params:
        paths=DATASET_PATHS,
    wildcard_constraints:
        dataset="coco|clevr",
    log:
        "logs/dataset_layout/{dataset}.log",
    script:
        "../scripts/dataset_layout.py"


rule sam_masks:
    """SAM point prompts at each CLEVR object's pixel_coords (best of 3 masks by predicted IoU, overlaps resolved
    by depth), one instance-id PNG per image of the study's CLEVR sample, and a contact sheet for the manual check."""
    conda:
        "../../environment.yml"
    input:
        layout=f"{RESULTS}/data/clevr_layout.json",
        checkpoint=sam_checkpoint(),
    output:
        masks=directory(f"{RESULTS}/clevr_masks"),
        contact_sheet=report(f"{RESULTS}/clevr_masks_contact_sheet.png", caption=caption_file("sam_contact_sheet"),
                             category="Data"),
    params:
        n_images=config.get("clevr", {}).get("n_images", 50),
        seed=config.get("clevr", {}).get("seed", 0),
        model_type=SAM.get("model_type", "vit_h"),
        clevr_root=DATASET_PATHS["clevr_root"],
    threads: 4
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=1,
    log:
        "logs/sam_masks.log",
    script:
        "../scripts/sam_masks.py"
