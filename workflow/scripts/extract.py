from pathlib import Path

from _common import setup_logging

from gradeclip.downloads import extract

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
archive = Path(snakemake.input[0]).read_text().split("\t")[0]  # noqa: F821  (the .done marker names the file)
out = extract(archive, snakemake.output[0], members=snakemake.params.members)  # noqa: F821
log.info("extracted %s to %s", archive, out)
