from pathlib import Path

from _common import setup_logging

from gradeclip.datasets import CLEVR_IMAGES, CLEVR_SPLIT
from gradeclip.downloads import downloaded_file
from gradeclip.io import read_instance_mask
from gradeclip.sam_masks import build_predictor, load_rgb, mask_path, save_contact_sheet, study_masks

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
params, out = snakemake.params, snakemake.output  # noqa: F821
predictor = build_predictor(downloaded_file(snakemake.input.checkpoint), model_type=params.model_type)  # noqa: F821
scenes = study_masks(predictor, params.clevr_root, out.masks, params.n_images, params.seed)
images = Path(params.clevr_root) / CLEVR_IMAGES / CLEVR_SPLIT
sheet = scenes[:16]
save_contact_sheet([load_rgb(images / s["image_filename"]) for s in sheet],
                   [read_instance_mask(mask_path(out.masks, s["image_filename"])) for s in sheet],
                   out.contact_sheet, scenes=sheet)
log.info("SAM %s masks for %d CLEVR scenes", params.model_type, len(scenes))
