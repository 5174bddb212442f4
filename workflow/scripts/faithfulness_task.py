"""One task of the faithfulness study (rule faithfulness_task): analysis.faithfulness.run_task on the toy world or
the paper's data."""
import functools

from _common import setup_logging

from analysis.faithfulness import paper_data, run_task, toy_data, write_task

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
p = snakemake.params  # noqa: F821
task = snakemake.wildcards.task  # noqa: F821

import torch  # noqa: E402

from gradeclip.models import load_clip  # noqa: E402

torch.set_num_threads(max(1, snakemake.threads))  # noqa: F821
torch.manual_seed(0)
clip = load_clip(p.model["name"], p.model["pretrained"], device=p.model["device"], precision=p.model["precision"])
if p.data["kind"] == "toy":
    data_for = functools.lru_cache(maxsize=None)(lambda kind: toy_data(kind, int(p.options["n_images"]),
                                                                       int(p.data["image_size"])))
else:
    data_for = functools.lru_cache(maxsize=None)(lambda kind: paper_data(kind, p.data, p.options))
written = run_task(task, clip, data_for, p.options)
write_task(snakemake.output[0], written)  # noqa: F821
log.info("%s: wrote %s", task, ", ".join(sorted(written)))
