"""Atomic file and folder writes: write under a temporary name in the target's folder, then rename onto the final
name.

Readers therefore see either the old file or the complete new one, never a truncated file that looks finished; a
writer that fails leaves no temporary file behind and the old file (if any) untouched. Standard library only.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_path(path) as tmp:`` fill ``tmp``; when the block ends normally ``tmp`` is renamed onto
    ``path``, when it raises ``tmp`` is removed (and an existing ``path`` is left as it was).

    ``tmp`` is ``.<name>.<random><suffix>`` in the same folder (hidden, same file system, so the rename is atomic;
    the folder is created if needed). It keeps the final suffix, so writers that infer the format from it
    (``np.savez``, PIL, ...) work, and it gets ordinary permissions (0644; ``mkstemp`` makes it 0600) once written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """``with atomic_folder(path) as staging:`` fill the folder ``staging``; when the block ends normally it is
    renamed onto ``path``, when it raises it is removed. A folder at ``path`` is an error unless ``replace`` (then
    it is removed just before the rename). ``staging`` is ``.<name>.partial-<random>`` beside ``path`` (same file
    system, so the rename is atomic), with ordinary permissions (0755; ``mkdtemp`` makes it private)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    staging.chmod(0o755)
    try:
        yield staging
        if replace and path.exists():
            shutil.rmtree(path)
        os.rename(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it onto ``path`` (see
    :func:`atomic_path`); returns ``path`` as a Path."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`); returns ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`), without newline translation; returns
    ``path``."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding=encoding, newline="") as f:
            f.write(text)

    return atomic_write(path, write)


# A model's ``pretrained`` value names a checkpoint file, not an open_clip tag, when it has one of these suffixes
# or a folder in it (open_clip tags such as ``openai`` or ``laion2b_s34b_b88k`` have neither).
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def names_checkpoint_file(pretrained: str | os.PathLike | None) -> bool:
    """Whether ``pretrained`` names a checkpoint file (see ``CHECKPOINT_SUFFIXES``) rather than an open_clip tag."""
    if not pretrained:
        return False
    value = os.fspath(pretrained)
    return os.sep in value or "/" in value or Path(value).suffix in CHECKPOINT_SUFFIXES
