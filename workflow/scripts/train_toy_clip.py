from _common import setup_logging

from gradeclip.toyworld.train import train_toy_clip

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
train_toy_clip(snakemake.output[0], minutes=snakemake.params.minutes, seed=snakemake.params.seed)  # noqa: F821
log.info("trained toy CLIP -> %s", snakemake.output[0])  # noqa: F821
