from pathlib import Path

from _common import setup_logging

from gradeclip.toyworld import ToyWorldConfig, write_dataset

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
p = snakemake.params.toyworld  # noqa: F821
config = ToyWorldConfig(image_size=p["image_size"], min_objects=p["min_objects"], max_objects=p["max_objects"])
out_dir = Path(snakemake.output.scenes).parents[1]  # noqa: F821  (<results>/toyworld)
path = write_dataset(out_dir, n_scenes=p["n_scenes"], seed=p["seed"], split=snakemake.params.split,  # noqa: F821
                     config=config)
log.info("wrote %d scenes to %s", p["n_scenes"], path)
