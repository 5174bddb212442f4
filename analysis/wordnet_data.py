"""Offline WordNet for nltk, built from Debian's WordNet 3.0 packages.

nltk's downloader needs the internet. Debian ships the same Princeton WordNet 3.0 database in the packages
``wordnet-base`` (data.*, index.*, *.exc, cntlist*) and ``wordnet-sense-index`` (index.sense), installed
under ``/usr/share/wordnet``. nltk's ``WordNetCorpusReader`` additionally needs a ``lexnames`` file (the
table of the 45 lexicographer files), which Debian does not ship; it is written here from the standard
WordNet 3.0 list (``lexnames(5WN)``), checked against the lex_filenum fields of the data files.

The files are *copied* (nltk's corpus reader resolves paths under its data directory; symlinks are not
followed reliably across its path pointers), into ``<data_dir>/corpora/wordnet/``. Copying is idempotent:
a file already present with the same size is left alone.

Data directory, first match wins: the ``data_dir`` argument; the first entry of the ``NLTK_DATA``
environment variable; ``<repo>/.cache/nltk_data``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")

#: Files nltk's WordNetCorpusReader opens (its ``_FILES``), minus ``lexnames`` which is written here.
WORDNET_FILES = (
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)

#: The standard WordNet 3.0 lexicographer files: (number, name, syntactic category 1=n 2=v 3=adj 4=adv).
LEXNAMES = (
    (0, "adj.all", 3),
    (1, "adj.pert", 3),
    (2, "adv.all", 4),
    (3, "noun.Tops", 1),
    (4, "noun.act", 1),
    (5, "noun.animal", 1),
    (6, "noun.artifact", 1),
    (7, "noun.attribute", 1),
    (8, "noun.body", 1),
    (9, "noun.cognition", 1),
    (10, "noun.communication", 1),
    (11, "noun.event", 1),
    (12, "noun.feeling", 1),
    (13, "noun.food", 1),
    (14, "noun.group", 1),
    (15, "noun.location", 1),
    (16, "noun.motive", 1),
    (17, "noun.object", 1),
    (18, "noun.person", 1),
    (19, "noun.phenomenon", 1),
    (20, "noun.plant", 1),
    (21, "noun.possession", 1),
    (22, "noun.process", 1),
    (23, "noun.quantity", 1),
    (24, "noun.relation", 1),
    (25, "noun.shape", 1),
    (26, "noun.state", 1),
    (27, "noun.substance", 1),
    (28, "noun.time", 1),
    (29, "verb.body", 2),
    (30, "verb.change", 2),
    (31, "verb.cognition", 2),
    (32, "verb.communication", 2),
    (33, "verb.competition", 2),
    (34, "verb.consumption", 2),
    (35, "verb.contact", 2),
    (36, "verb.creation", 2),
    (37, "verb.emotion", 2),
    (38, "verb.motion", 2),
    (39, "verb.perception", 2),
    (40, "verb.possession", 2),
    (41, "verb.social", 2),
    (42, "verb.stative", 2),
    (43, "verb.weather", 2),
    (44, "adj.ppl", 3),
)


class WordNetUnavailable(RuntimeError):
    """WordNet files are not installed where this module can copy them from."""


def lexnames_text() -> str:
    """The ``lexnames`` file content: ``NN<TAB>name<TAB>pos`` per line, 45 lines."""
    return "".join(f"{num:02d}\t{name}\t{pos}\n" for num, name, pos in LEXNAMES)


def default_data_dir() -> Path:
    """``$NLTK_DATA`` (first entry) if set, else ``<repo>/.cache/nltk_data``."""
    env = os.environ.get("NLTK_DATA", "")
    first = env.split(os.pathsep)[0] if env else ""
    if first:
        return Path(first)
    return Path(__file__).resolve().parents[1] / ".cache" / "nltk_data"


def ensure_wordnet(data_dir: str | os.PathLike | None = None, source_dir: str | os.PathLike | None = None) -> Path:
    """Make WordNet 3.0 loadable by nltk offline; return the nltk data directory used.

    Copies the Debian WordNet files into ``<data_dir>/corpora/wordnet/`` (idempotent), writes ``lexnames``,
    and puts ``data_dir`` at the front of ``nltk.data.path``. Raises :class:`WordNetUnavailable` with the
    install command when the source files are missing.
    """
    src = Path(source_dir) if source_dir is not None else DEBIAN_WORDNET_DIR
    dest_root = Path(data_dir) if data_dir is not None else default_data_dir()
    dest = dest_root / "corpora" / "wordnet"

    missing = [name for name in WORDNET_FILES if not (dest / name).is_file() and not (src / name).is_file()]
    if missing:
        raise WordNetUnavailable(
            f"WordNet 3.0 files {missing} not found in {src} (nor already copied to {dest}). "
            f"Install the Debian packages {' '.join(DEBIAN_PACKAGES)}: "
            f"`apt-get update && apt-get install -y {' '.join(DEBIAN_PACKAGES)}`."
        )

    dest.mkdir(parents=True, exist_ok=True)
    for name in WORDNET_FILES:
        target = dest / name
        source = src / name
        if source.is_file() and (not target.is_file() or target.stat().st_size != source.stat().st_size):
            tmp = target.with_suffix(target.suffix + ".tmp")
            shutil.copyfile(source, tmp)  # copy, not symlink: see module docstring
            os.replace(tmp, target)
    lexnames = dest / "lexnames"
    text = lexnames_text()
    if not lexnames.is_file() or lexnames.read_text() != text:
        lexnames.write_text(text)

    import nltk  # imported here so that merely importing this module stays cheap

    root = str(dest_root)
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    return dest_root


def load_lemmatizer(data_dir: str | os.PathLike | None = None):
    """A working ``nltk.stem.WordNetLemmatizer`` backed by the offline WordNet (see :func:`ensure_wordnet`).

    Raises :class:`WordNetUnavailable` when WordNet cannot be installed or loaded.
    """
    ensure_wordnet(data_dir)
    from nltk.stem import WordNetLemmatizer

    lemmatizer = WordNetLemmatizer()
    try:
        lemmatizer.lemmatize("dogs", "n")
    except LookupError as err:  # nltk found no usable corpus despite the copy
        raise WordNetUnavailable(f"nltk could not load WordNet after copying it: {err}") from err
    return lemmatizer
