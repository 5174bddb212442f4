from pathlib import Path

from _common import setup_logging

from analysis.design import StudyDesign, clevr_design, coco_design, toy_design

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
inp, params = snakemake.input, snakemake.params  # noqa: F821
if params.toy:
    design = toy_design(inp.scenes, Path(inp.scenes).parents[1], seed=params.seed)
else:
    clevr_root = Path(inp.clevr) / "CLEVR_v1.0"
    design = StudyDesign.combine(
        coco_design(Path(inp.karpathy) / "dataset_coco.json",
                    Path(inp.coco_annotations) / "annotations" / "instances_val2014.json", inp.coco_images,
                    n_per_group=params.coco["addibility_per_group"], seed=params.coco["seed"],
                    n_images=params.coco["n_images"]),
        clevr_design(clevr_root / "scenes" / "CLEVR_val_scenes.json", clevr_root / "images", inp.clevr_masks,
                     n_images=params.clevr["n_images"], seed=params.clevr["seed"]))
design.write(Path(snakemake.output.notes).parent)  # noqa: F821
log.info("design:\n%s", design.summary().to_string())
