from _common import setup_logging

from gradeclip.downloads import downloaded_file, extract

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
archive = downloaded_file(snakemake.input[0])  # noqa: F821
out = extract(archive, snakemake.output[0], members=snakemake.params.members)  # noqa: F821
log.info("extracted %s to %s", archive, out)
