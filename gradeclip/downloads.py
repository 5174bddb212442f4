"""Checksummed downloads and atomic archive extraction for the study's external data.

Everything the study needs from outside (COCO val2014 images, the Karpathy split file,
CLEVR v1.0, the SAM ViT-H checkpoint) is listed in ``RESOURCES`` together with the
checksum published for it. ``fetch`` either downloads a file or, on machines without
internet, takes a pre-downloaded local copy named in the workflow config; in both cases
the checksum is verified before the file appears under its final name, so a file at
``dest`` is always complete and correct.

Only the standard library is used for the transfer itself (plus tqdm for the progress
bar) so that the download step has no heavy imports.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from tqdm import tqdm

from .files import atomic_folder, atomic_write_text

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

# Short enough that an offline machine fails at once instead of hanging a workflow
# job; long enough for a slow but working server to answer (it bounds each socket
# operation, not the whole transfer).
DEFAULT_TIMEOUT_S = 15.0
CHUNK_BYTES = 1 << 20
# Written inside an extraction directory as its last file: its presence is what
# says the extraction finished.
EXTRACT_MARKER = ".extract-complete"


class DownloadError(RuntimeError):
    """A download, local copy, checksum or extraction failed; the message says what to do.

    Callers (CLI, workflow) should print ``str(error)`` rather than a traceback.
    """


class ChecksumError(DownloadError):
    """A file's checksum differs from the expected one."""


# --------------------------------------------------------------------------------------
# Registry of the real data sets and weights
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One downloadable file and the checksum published for it."""

    name: str
    url: str
    filename: str
    sha256: Optional[str]
    md5: Optional[str] = None
    size_bytes: Optional[int] = None
    # Where the checksum(s) were published, so they can be re-checked.
    checksum_source: str = ""
    note: str = ""

    @property
    def config_key(self) -> str:
        """Workflow config key under which a pre-downloaded copy of this file can be given."""
        return f"data.local_copies.{self.name}"


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            name="coco_val2014",
            url="http://images.cocodataset.org/zips/val2014.zip",
            filename="val2014.zip",
            sha256="fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee3b9fde0",
            md5="a3d79f5ed8d289b7a7554ce06a5782b3",
            size_bytes=6645013297,
            checksum_source=(
                "sha256+size: tensorflow/datasets tensorflow_datasets/url_checksums/"
                "coco_captions.txt; md5: salesforce/LAVIS "
                "lavis/datasets/download_scripts/download_coco.py"
            ),
            note="COCO 2014 validation images; the Karpathy test split is a subset.",
        ),
        Resource(
            name="coco_annotations2014",
            url="http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
            filename="annotations_trainval2014.zip",
            sha256="031296bbc80c45a1d1f76bf9a90ead27e94e99ec629208449507a4917a3bf009",
            size_bytes=252872794,
            checksum_source="sha256+size: tensorflow/datasets tensorflow_datasets/url_checksums/coco.txt",
            note="COCO 2014 instance and caption annotations (instances_val2014.json for the addibility triplets).",
        ),
        Resource(
            name="karpathy_captions",
            url="https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip",
            filename="caption_datasets.zip",
            sha256="4cfd70132527b80933105e5829dc9034eaab9573482e2e680abbab6130244817",
            size_bytes=36745453,
            checksum_source=(
                "tensorflow/datasets tensorflow_datasets/url_checksums/coco_captions.txt"
            ),
            note="Contains dataset_coco.json (Karpathy & Fei-Fei splits) among others.",
        ),
        Resource(
            name="clevr_v1",
            url="https://dl.fbaipublicfiles.com/clevr/CLEVR_v1.0.zip",
            filename="CLEVR_v1.0.zip",
            sha256="5cd61cf1096ed20944df93c9adb31e74d189b8459a94f54ba00090e5c59936d1",
            md5="b11922020e72d0cd9154779b2d3d07d2",
            size_bytes=19021600724,
            checksum_source=(
                "sha256+size: tensorflow/datasets tensorflow_datasets/url_checksums/"
                "clevr.txt; md5: pytorch/vision torchvision/datasets/clevr.py"
            ),
            note="18 GB; the study needs only images/val and scenes/CLEVR_val_scenes.json.",
        ),
        Resource(
            name="sam_vit_h",
            url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
            filename="sam_vit_h_4b8939.pth",
            sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            # The "4b8939" in the file name is the start of this md5, not of the sha256.
            md5="4b8939a88964f0f4ff5f5b2642c598a6",
            checksum_source=(
                "sha256: tritolol/ChangeSAM changesam/build_changesam.py; "
                "md5: Sanster/IOPaint iopaint/plugins/interactive_seg.py"
            ),
            note="Segment Anything ViT-H weights (~2.4 GiB).",
        ),
    )
}


# --------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------


def _expected_digests(sha256: Optional[str], md5: Optional[str]) -> dict[str, str]:
    expected = {}
    if sha256:
        expected["sha256"] = sha256.lower()
    if md5:
        expected["md5"] = md5.lower()
    return expected


def file_digest(path: PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's contents, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def _describe_expected(sha256: Optional[str], md5: Optional[str]) -> str:
    expected = _expected_digests(sha256, md5)
    if not expected:
        return "no checksum pinned"
    return ", ".join(f"{algo} {digest}" for algo, digest in expected.items())


def _check_digests(
    path: Path, actual: dict[str, str], expected: dict[str, str], what: str, outcome: str = ""
) -> None:
    for algorithm, expected_digest in expected.items():
        if actual[algorithm] != expected_digest:
            raise ChecksumError(
                f"{what} {path} is corrupted: expected {algorithm} {expected_digest}, "
                f"got {actual[algorithm]}.{outcome}"
            )


def verify_checksum(
    path: PathLike, sha256: Optional[str] = None, md5: Optional[str] = None
) -> None:
    """Raise ``ChecksumError`` unless ``path`` has every given checksum."""
    path = Path(path)
    expected = _expected_digests(sha256, md5)
    actual = {algorithm: file_digest(path, algorithm) for algorithm in expected}
    _check_digests(path, actual, expected, "File")


def _warn_unpinned(path: Path, digest: str) -> None:
    log.warning(
        "No checksum pinned for %s; its sha256 is %s. Verify it and pin it.", path, digest
    )


# --------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _unreachable_message(
    url: str, reason: object, config_key: Optional[str], sha256: Optional[str], md5: Optional[str]
) -> str:
    where = (
        f"set `{config_key}` in the workflow config to its path"
        if config_key
        else "pass its path as local_copy"
    )
    return (
        f"Cannot download {url} ({reason}). If this machine has no internet, download the "
        f"file elsewhere and {where}; expected checksum: "
        f"{_describe_expected(sha256, md5)}."
    )


def _install_local_copy(
    local_copy: Path, dest: Path, expected: dict[str, str], config_key: Optional[str]
) -> None:
    if not local_copy.is_file():
        key = f" (config key `{config_key}`)" if config_key else ""
        raise DownloadError(f"Local copy {local_copy}{key} does not exist or is not a file.")
    actual = {algorithm: file_digest(local_copy, algorithm) for algorithm in expected}
    # The user's own file is never deleted, only reported.
    _check_digests(
        local_copy, actual, expected, "Local copy", " Replace it with a good copy."
    )
    if not expected:
        _warn_unpinned(local_copy, file_digest(local_copy))
    part = _part_path(dest)
    _remove_quietly(part)
    try:
        # A hard link costs no space for multi-GB archives; other filesystems get a copy.
        try:
            os.link(local_copy, part)
        except OSError:
            shutil.copyfile(local_copy, part)
        os.replace(part, dest)
    finally:
        _remove_quietly(part)


def _stream_to_file(
    url: str, part: Path, algorithms: Iterable[str], timeout: float, progress: Optional[bool]
) -> dict[str, str]:
    """Download ``url`` into ``part``; return the hex digests of what was written."""
    hashers = {algorithm: hashlib.new(algorithm) for algorithm in algorithms}
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length_header = response.headers.get("Content-Length")
        expected_bytes = int(length_header) if length_header is not None else None
        received = 0
        with open(part, "wb") as out, tqdm(
            total=expected_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name[: -len(".part")],
            disable=None if progress is None else not progress,
        ) as bar:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                for hasher in hashers.values():
                    hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    # http.client returns a short body without complaint when the server closes early.
    if expected_bytes is not None and received != expected_bytes:
        raise DownloadError(
            f"Download of {url} was cut off: received {received} of {expected_bytes} bytes."
        )
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def fetch(
    url: str,
    dest: PathLike,
    sha256: Optional[str] = None,
    md5: Optional[str] = None,
    local_copy: Optional[PathLike] = None,
    config_key: Optional[str] = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: Optional[bool] = None,
) -> Path:
    """Put the file at ``url`` at ``dest``, verified against ``sha256``/``md5``.

    With ``local_copy`` (a pre-downloaded file named in the config, for machines without
    internet) that file is verified and linked or copied; nothing is downloaded.
    Otherwise the file is streamed to ``dest.part`` and renamed to ``dest`` only after
    the checksum matched, so ``dest`` never holds a partial or corrupt file. An existing
    ``dest`` that matches is kept; one that does not is replaced.

    ``config_key`` names the config entry for a local copy; it appears in the error
    raised when the server cannot be reached. ``progress=None`` shows the progress bar
    only on a terminal. Raises ``DownloadError`` (``ChecksumError`` for a mismatch).
    """
    dest = Path(dest)
    expected = _expected_digests(sha256, md5)

    if dest.is_file() and local_copy is None:
        # Without a pinned checksum an existing file is taken as it is.
        try:
            verify_checksum(dest, sha256, md5)
            return dest
        except ChecksumError as mismatch:
            log.warning("%s Fetching it again.", mismatch)
            dest.unlink()

    dest.parent.mkdir(parents=True, exist_ok=True)
    if local_copy is not None:
        _install_local_copy(Path(local_copy), dest, expected, config_key)
        return dest

    part = _part_path(dest)
    algorithms = set(expected) | {"sha256"}
    try:
        actual = _stream_to_file(url, part, algorithms, timeout, progress)
        _check_digests(
            dest, actual, expected, "Downloaded file", " It was deleted; fetch it again."
        )
        if not expected:
            _warn_unpinned(dest, actual["sha256"])
        os.replace(part, dest)
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code} {error.reason}"
        raise DownloadError(_unreachable_message(url, reason, config_key, sha256, md5)) from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as error:
        # URLError wraps DNS failures and refused connections in .reason.
        reason = getattr(error, "reason", error)
        raise DownloadError(_unreachable_message(url, reason, config_key, sha256, md5)) from None
    except (http.client.HTTPException, OSError) as error:
        raise DownloadError(f"Download of {url} to {dest} failed: {error!r}.") from None
    finally:
        # Whatever went wrong, no partial file is left behind.
        _remove_quietly(part)
    return dest


def fetch_resource(
    resource: Union[str, Resource],
    dest_dir: PathLike,
    local_copy: Optional[PathLike] = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: Optional[bool] = None,
) -> Path:
    """``fetch`` a registry entry (by name or ``Resource``) into ``dest_dir/filename``."""
    if isinstance(resource, str):
        try:
            resource = RESOURCES[resource]
        except KeyError:
            raise DownloadError(
                f"Unknown resource {resource!r}; known: {', '.join(sorted(RESOURCES))}."
            ) from None
    # sha256 alone is enough where it is known; hashing multi-GB files twice is not free.
    md5 = None if resource.sha256 else resource.md5
    return fetch(
        resource.url,
        Path(dest_dir) / resource.filename,
        sha256=resource.sha256,
        md5=md5,
        local_copy=local_copy,
        config_key=resource.config_key,
        timeout=timeout,
        progress=progress,
    )


# --------------------------------------------------------------------------------------
# "done" markers: what the workflow records once a download is verified
# --------------------------------------------------------------------------------------


def write_done_marker(marker: PathLike, path: PathLike, resource: Union[str, Resource]) -> Path:
    """Record that ``path`` holds ``resource``, verified: one line ``<path>\tsha256=<registry sha256>``. Written
    (atomically) only after ``fetch_resource`` returned, i.e. after the checksum matched."""
    resource = RESOURCES[resource] if isinstance(resource, str) else resource
    return atomic_write_text(marker, f"{path}\tsha256={resource.sha256}\n")


def downloaded_file(marker: PathLike) -> Path:
    """The verified file a done marker (``*.done``) names; any other path is returned as it is (a file given in the
    config instead of a download)."""
    marker = Path(marker)
    if marker.suffix != ".done":
        return marker
    return Path(marker.read_text().split("\t")[0].strip())


def download_finished(marker: PathLike, resource: Union[str, Resource]) -> bool:
    """Whether ``marker`` records a finished download of ``resource`` that still holds: the marker records the
    registry's current sha256, and the file it names exists (with the registry's size, where known). The file is
    not hashed again: it was hashed before the marker was written. A finished download is data, not a product to
    rebuild: the workflow leaves it alone even when its code changes."""
    resource = RESOURCES[resource] if isinstance(resource, str) else resource
    marker = Path(marker)
    if not marker.is_file():
        return False
    fields = marker.read_text().strip().split("\t")
    if len(fields) != 2 or fields[1] != f"sha256={resource.sha256}":
        return False
    path = Path(fields[0])
    return path.is_file() and (resource.size_bytes is None or path.stat().st_size == resource.size_bytes)


# --------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------


def _selected(names: Sequence[str], members: Optional[Sequence[str]]) -> list[str]:
    """Archive names matching ``members``: exact names, or folder prefixes."""
    if members is None:
        return list(names)
    prefixes = [m.rstrip("/") for m in members]
    chosen = [
        name
        for name in names
        if any(name.rstrip("/") == p or name.startswith(p + "/") for p in prefixes)
    ]
    missing = [
        m
        for m, p in zip(members, prefixes)
        if not any(n.rstrip("/") == p or n.startswith(p + "/") for n in chosen)
    ]
    if missing:
        raise DownloadError(f"Not in the archive: {', '.join(missing)}.")
    return chosen


def _extract_into(archive: Path, target: Path, members: Optional[Sequence[str]]) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            # ZipFile.extract strips absolute paths and "..", so entries stay in target.
            zf.extractall(target, members=_selected(zf.namelist(), members))
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            wanted = set(_selected(tf.getnames(), members))
            # The "data" filter refuses links and paths that leave target.
            tf.extractall(
                target,
                members=[m for m in tf.getmembers() if m.name in wanted],
                filter="data",
            )
    else:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive.")


def is_extracted(out_dir: PathLike) -> bool:
    """Whether ``out_dir`` holds a finished ``extract``."""
    return (Path(out_dir) / EXTRACT_MARKER).is_file()


def extract(
    archive: PathLike, out_dir: PathLike, members: Optional[Sequence[str]] = None
) -> Path:
    """Extract a zip or tar ``archive`` into ``out_dir`` atomically.

    ``members`` restricts extraction to those entries; an entry ending in "/" or naming
    a folder selects everything under it. The archive is unpacked into a temporary
    folder beside ``out_dir``, a marker file is written last, and the folder is then
    renamed to ``out_dir``: ``out_dir`` either does not exist or is complete. A finished
    ``out_dir`` is kept as it is.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    if is_extracted(out_dir):
        return out_dir
    if out_dir.exists():
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        else:
            raise DownloadError(
                f"{out_dir} exists but was not made by a finished extraction "
                f"(no {EXTRACT_MARKER}); remove it and run again."
            )
    with atomic_folder(out_dir) as staging:
        try:
            _extract_into(archive, staging, members)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
            raise DownloadError(f"Cannot extract {archive}: {error}.") from None
        (staging / EXTRACT_MARKER).write_text(
            json.dumps({"archive": archive.name, "members": members}) + "\n"
        )
    return out_dir
