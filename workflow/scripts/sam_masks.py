from pathlib import Path

from _common import setup_logging

from gradeclip.clevr import read_scenes, sample_scenes
from gradeclip.sam_masks import (build_predictor, load_instance_mask, load_rgb, mask_path, masks_for_scenes,
                                 save_contact_sheet)

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
clevr = Path(snakemake.params.clevr_dir)  # noqa: F821
scenes = sample_scenes(read_scenes(clevr / "scenes" / "CLEVR_val_scenes.json")["scenes"],
                       snakemake.params.n_images, snakemake.params.seed)  # noqa: F821
checkpoint = Path(snakemake.input.checkpoint).read_text().split("\t")[0]  # noqa: F821
predictor = build_predictor(checkpoint, model_type=snakemake.params.model_type)  # noqa: F821
paths = masks_for_scenes(predictor, scenes, clevr / "images" / "val", snakemake.output.masks)  # noqa: F821
sheet = scenes[:16]
save_contact_sheet([load_rgb(clevr / "images" / "val" / s["image_filename"]) for s in sheet],
                   [load_instance_mask(mask_path(snakemake.output.masks, s["image_filename"])) for s in sheet],
                   snakemake.output.contact_sheet, scenes=sheet)  # noqa: F821
log.info("SAM masks for %d CLEVR scenes", len(paths))
