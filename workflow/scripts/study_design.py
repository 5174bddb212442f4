from pathlib import Path

from _common import setup_logging

from analysis.design import StudyDesign
from analysis.design.coco import coco_design
from analysis.design.scenes import clevr_design, toy_design
from gradeclip.datasets import CLEVR_IMAGES, CLEVR_SCENES

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
inp, params = snakemake.input, snakemake.params  # noqa: F821
if params.toy:
    design = toy_design(inp.scenes, Path(inp.scenes).parents[1], seed=params.seed)
else:
    paths, clevr_root = params.paths, Path(params.paths["clevr_root"])
    design = StudyDesign.combine(
        coco_design(paths["karpathy_json"], None, paths["coco_root"], n_per_group=params.coco["addibility_per_group"],
                    seed=params.coco["seed"], n_images=params.coco["n_images"], manifest=inp.triplets),
        clevr_design(clevr_root / CLEVR_SCENES, clevr_root / CLEVR_IMAGES, inp.clevr_masks,
                     n_images=params.clevr["n_images"], seed=params.clevr["seed"]))
design.write(Path(snakemake.output.notes).parent)  # noqa: F821
log.info("design:\n%s", design.summary().to_string())
