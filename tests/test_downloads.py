"""Tests for gradeclip.downloads against a local http.server on 127.0.0.1 only."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from gradeclip import downloads
from gradeclip.downloads import ChecksumError, DownloadError, extract, fetch

PAYLOAD = b"gradeclip test payload\n" * 1000
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
WRONG_SHA256 = "0" * 64


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /truncated promises more bytes than it sends, then hangs up."""

    def do_GET(self):
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:100])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture()
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "payload.bin").write_bytes(PAYLOAD)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_with_matching_checksums(server, tmp_path):
    base, _ = server
    dest = tmp_path / "out" / "payload.bin"
    result = fetch(f"{base}/payload.bin", dest, sha256=PAYLOAD_SHA256, md5=PAYLOAD_MD5)
    assert result == dest
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["payload.bin"]


def test_existing_good_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "payload.bin"
    dest.write_bytes(PAYLOAD)
    # The URL points at a closed port: success proves no request was made.
    fetch(f"http://127.0.0.1:{_closed_port()}/payload.bin", dest, sha256=PAYLOAD_SHA256)
    assert dest.read_bytes() == PAYLOAD


def test_existing_corrupt_file_is_replaced(server, tmp_path):
    base, _ = server
    dest = tmp_path / "payload.bin"
    dest.write_bytes(b"stale")
    fetch(f"{base}/payload.bin", dest, sha256=PAYLOAD_SHA256)
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_file_and_names_both_checksums(server, tmp_path):
    base, _ = server
    dest = tmp_path / "payload.bin"
    with pytest.raises(ChecksumError) as raised:
        fetch(f"{base}/payload.bin", dest, sha256=WRONG_SHA256)
    message = str(raised.value)
    assert str(dest) in message
    assert WRONG_SHA256 in message and PAYLOAD_SHA256 in message
    assert _leftovers(tmp_path) == ["served"]


def test_md5_mismatch_is_detected(server, tmp_path):
    base, _ = server
    with pytest.raises(ChecksumError, match="md5"):
        fetch(f"{base}/payload.bin", tmp_path / "p.bin", sha256=PAYLOAD_SHA256, md5="f" * 32)
    assert not (tmp_path / "p.bin").exists()


def test_truncated_download_leaves_nothing(server, tmp_path):
    base, _ = server
    dest = tmp_path / "payload.bin"
    # No checksum given: only the Content-Length check can catch the short body.
    with pytest.raises(DownloadError, match="cut off"):
        fetch(f"{base}/truncated", dest)
    assert _leftovers(tmp_path) == ["served"]


def test_http_404_is_a_download_error(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match="404"):
        fetch(f"{base}/missing.bin", tmp_path / "missing.bin", sha256=PAYLOAD_SHA256)
    assert _leftovers(tmp_path) == ["served"]


def test_offline_fails_fast_with_one_helpful_message(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/sam_vit_h_4b8939.pth"
    dest = tmp_path / "sam.pth"
    start = time.monotonic()
    with pytest.raises(DownloadError) as raised:
        fetch(url, dest, sha256=PAYLOAD_SHA256, config_key="local_copies.sam_vit_h", timeout=5)
    assert time.monotonic() - start < 5
    message = str(raised.value)
    assert url in message
    assert "local_copies.sam_vit_h" in message
    assert PAYLOAD_SHA256 in message
    # Raised "from None": the CLI can print the message without a chained traceback.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert list(tmp_path.iterdir()) == []


def test_local_copy_is_verified_and_installed(tmp_path):
    local = tmp_path / "predownloaded.bin"
    local.write_bytes(PAYLOAD)
    dest = tmp_path / "data" / "payload.bin"
    url = f"http://127.0.0.1:{_closed_port()}/payload.bin"  # must not be contacted
    fetch(url, dest, sha256=PAYLOAD_SHA256, local_copy=local)
    assert dest.read_bytes() == PAYLOAD
    assert local.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["payload.bin"]


def test_corrupt_local_copy_is_rejected_but_kept(tmp_path):
    local = tmp_path / "predownloaded.bin"
    local.write_bytes(b"not the payload")
    dest = tmp_path / "data" / "payload.bin"
    with pytest.raises(ChecksumError) as raised:
        fetch("http://127.0.0.1:9/x", dest, sha256=PAYLOAD_SHA256, local_copy=local)
    assert str(local) in str(raised.value)
    assert local.exists()
    assert not dest.exists()


def test_missing_local_copy_names_config_key(tmp_path):
    with pytest.raises(DownloadError, match="local_copies.clevr_v1"):
        fetch(
            "http://127.0.0.1:9/x",
            tmp_path / "x.zip",
            local_copy=tmp_path / "nope.zip",
            config_key="local_copies.clevr_v1",
        )


def test_fetch_resource_offline_message_uses_registry(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}/caption_datasets.zip"
    resource = downloads.RESOURCES["karpathy_captions"]
    monkeypatch.setitem(
        downloads.RESOURCES,
        "karpathy_captions",
        downloads.Resource(**{**resource.__dict__, "url": url}),
    )
    with pytest.raises(DownloadError) as raised:
        downloads.fetch_resource("karpathy_captions", tmp_path, timeout=5)
    assert resource.config_key in str(raised.value)
    assert resource.sha256 in str(raised.value)


def _schema_has_key(schema: dict, dotted: str) -> bool:
    """Whether the workflow config schema declares ``dotted`` (a.b.c), so the key an error message names exists."""
    node = schema
    for part in dotted.split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            return False
    return True


def test_registry_entries_are_well_formed():
    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text())
    for name, resource in downloads.RESOURCES.items():
        assert resource.name == name
        assert resource.url.endswith(resource.filename)
        assert _schema_has_key(schema, resource.config_key), resource.config_key
        if resource.sha256 is not None:
            assert len(resource.sha256) == 64 and int(resource.sha256, 16) >= 0
            assert resource.checksum_source
        if resource.md5 is not None:
            assert len(resource.md5) == 32 and int(resource.md5, 16) >= 0
    # The SAM file name carries the start of its md5.
    sam = downloads.RESOURCES["sam_vit_h"]
    assert sam.md5.startswith("4b8939")


# ---------------------------------------------------------------------------- extract


def _make_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("CLEVR_v1.0/scenes/CLEVR_val_scenes.json", '{"scenes": []}')
        zf.writestr("CLEVR_v1.0/images/val/CLEVR_val_000000.png", b"png")
        zf.writestr("CLEVR_v1.0/images/train/CLEVR_train_000000.png", b"png")


def test_extract_zip_with_member_prefixes(tmp_path):
    archive = tmp_path / "clevr.zip"
    _make_zip(archive)
    out = extract(
        archive,
        tmp_path / "clevr",
        members=["CLEVR_v1.0/scenes/CLEVR_val_scenes.json", "CLEVR_v1.0/images/val/"],
    )
    assert (out / "CLEVR_v1.0/scenes/CLEVR_val_scenes.json").read_text() == '{"scenes": []}'
    assert (out / "CLEVR_v1.0/images/val/CLEVR_val_000000.png").exists()
    assert not (out / "CLEVR_v1.0/images/train").exists()
    assert downloads.is_extracted(out)
    assert _leftovers(tmp_path) == ["clevr", "clevr.zip"]


def test_extract_tar(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("folder/file.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    out = extract(archive, tmp_path / "a")
    assert (out / "folder/file.txt").read_bytes() == b"hello"
    assert downloads.is_extracted(out)


def test_extract_is_atomic_when_extraction_fails(tmp_path, monkeypatch):
    archive = tmp_path / "clevr.zip"
    _make_zip(archive)

    def fail_halfway(archive, target, members):
        (target / "half-written.png").write_bytes(b"x")
        raise OSError("disk full")

    monkeypatch.setattr(downloads, "_extract_into", fail_halfway)
    with pytest.raises(OSError):
        extract(archive, tmp_path / "clevr")
    # Neither the output folder nor the staging folder is left behind.
    assert _leftovers(tmp_path) == ["clevr.zip"]


def test_extract_skips_finished_and_refuses_foreign_folder(tmp_path):
    archive = tmp_path / "clevr.zip"
    _make_zip(archive)
    out = extract(archive, tmp_path / "clevr")
    marker_mtime = os.stat(out / downloads.EXTRACT_MARKER).st_mtime_ns
    assert extract(archive, out) == out
    assert os.stat(out / downloads.EXTRACT_MARKER).st_mtime_ns == marker_mtime

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "something").write_text("x")
    with pytest.raises(DownloadError, match="not made by a finished extraction"):
        extract(archive, foreign)


def test_extract_missing_member_and_bad_archive(tmp_path):
    archive = tmp_path / "clevr.zip"
    _make_zip(archive)
    with pytest.raises(DownloadError, match="Not in the archive: nope.json"):
        extract(archive, tmp_path / "x", members=["nope.json"])
    assert not (tmp_path / "x").exists()
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"this is not an archive")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        extract(bogus, tmp_path / "y")
    assert sorted(_leftovers(tmp_path)) == ["bogus.zip", "clevr.zip"]
