from _common import setup_logging

from gradeclip.toyworld.train import train_toy_clip

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
params = snakemake.params  # noqa: F821
# a fixed step count reproduces the shipped run; the minutes budget only applies without one
train_toy_clip(snakemake.output[0], steps=params.steps, minutes=None if params.steps else params.minutes,
               seed=params.seed)
log.info("trained toy CLIP -> %s", snakemake.output[0])  # noqa: F821
