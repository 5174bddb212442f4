from _common import explainer_from_params, setup_logging

from gradeclip.batch import explain_image_jobs
from gradeclip.jobs import jobs_in_shard, load_jobs_tsv

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
shard = int(snakemake.wildcards.shard)  # noqa: F821
jobs = jobs_in_shard(load_jobs_tsv(snakemake.input.jobs, "image"), shard,  # noqa: F821
                     snakemake.params.images_per_shard)  # noqa: F821
n = explain_image_jobs(explainer_from_params(snakemake), jobs, snakemake.output[0])  # noqa: F821
log.info("shard %d: %d images, %d maps", shard, len(jobs), n)
