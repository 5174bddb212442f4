import sys

from _common import setup_logging

from gradeclip.downloads import DownloadError, fetch_resource, write_done_marker

log = setup_logging(snakemake)  # noqa: F821 (injected by Snakemake)
name = snakemake.wildcards.resource  # noqa: F821
local = (snakemake.params.local_copies or {}).get(name)  # noqa: F821
try:
    path = fetch_resource(name, snakemake.params.dest_dir, local_copy=local)  # noqa: F821
except DownloadError as err:  # one actionable message (URL, config key, checksum), no traceback
    log.error("%s", err)
    sys.exit(f"download of {name} failed: {err}")
# the marker names the verified file; it is written only after the checksum matched
write_done_marker(snakemake.output[0], path, name)  # noqa: F821
log.info("%s ready at %s", name, path)
