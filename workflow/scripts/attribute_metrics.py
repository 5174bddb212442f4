from _common import setup_logging

from analysis.tables import read_table
from analysis.pipeline import attribute_shard_metrics

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
table = attribute_shard_metrics(snakemake.input.maps, read_table(snakemake.input.attributes),  # noqa: F821
                                snakemake.input.images, out=snakemake.output[0])  # noqa: F821
log.info("%d attribute texts scored", len(table))
