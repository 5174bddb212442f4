"""Checks of command-line arguments shared by ``gradeclip explain`` and ``gradeclip toyworld ...``, so that a user's
mistake is one line naming the option and the fix, found before any work is done (standard library only: building
the parser stays fast).

* ``count(minimum)``, ``positive_number``: argparse ``type=`` functions; a bad value is argparse's usage error
  (exit status 2) naming the option, e.g. ``argument --n: must be a whole number >= 0, got -3``.
* ``writable_folder``, ``writable_file``: an output folder / file that can be written, tried before a long run
  rather than after it; ``OutputError`` otherwise.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output path cannot be written; the message names it and why."""


def count(minimum: int):
    """An argparse type: a whole number >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"  # what argparse names in its own messages
    return parse


def positive_number(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def _writable(folder: Path, what: str) -> None:
    """Create ``folder`` (and its parents) if needed and write and remove a file in it; ``OutputError`` naming
    ``what`` otherwise."""
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if existing.exists() and not existing.is_dir():
        raise OutputError(f"{what}: {existing} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".write-test.")
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise OutputError(f"{what}: cannot write in {folder} ({err.strerror or err}); choose a writable "
                          "location") from None


def writable_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder ``path`` (and its parents) if needed and check that files can be written in it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path} is a file, not a folder; choose a folder (it is created if missing)")
    _writable(path, f"{option} {path}")
    return path


def writable_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Check that the output file ``path`` can be written (its folder is created if needed; the file is not)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name")
    _writable(path.parent, f"{option} {path}")
    return path
