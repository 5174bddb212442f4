from _common import setup_logging

from analysis.design.coco import coco_triplet_manifest

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
paths, coco, out = snakemake.params.paths, snakemake.params.coco, snakemake.output  # noqa: F821
table, stamp = coco_triplet_manifest(paths["karpathy_json"], paths["instances_json"], out.manifest,
                                     n_per_group=coco["addibility_per_group"], seed=coco["seed"],
                                     n_images=coco["n_images"])
log.info("%d triplets %s from %s", len(table), stamp["rows"], stamp["inputs"])
