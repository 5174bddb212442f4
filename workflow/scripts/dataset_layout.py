import json
import sys

from _common import setup_logging

from gradeclip.datasets import DatasetLayoutError, check_clevr_root, check_coco_root
from gradeclip.files import atomic_write_text

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
paths, dataset = snakemake.params.paths, snakemake.wildcards.dataset  # noqa: F821
try:
    counts = (check_coco_root(paths["coco_root"], paths["karpathy_json"]) if dataset == "coco"
              else check_clevr_root(paths["clevr_root"]))
except DatasetLayoutError as err:  # one message naming the missing files, no traceback
    log.error("%s", err)
    sys.exit(f"{dataset} data: {err}")
atomic_write_text(snakemake.output[0], json.dumps(counts, indent=1) + "\n")  # noqa: F821
log.info("%s layout: %s", dataset, counts)
