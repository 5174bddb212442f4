"""Optional packages of the library: the ones `pip install gradeclip-study` leaves out, and the one line that names the
extra bringing them.

The core install (pyproject's ``dependencies``) is what the library and the ``gradeclip`` command need to explain
images and texts and to run the toy world. A few parts need more and get it from the ``study`` extra: the miniature
data set (``gradeclip mini-data``: scikit-image's sample photographs and polygons, SAM's builder) and the SAM masks of
the paper's CLEVR study (``gradeclip.sam_masks``); the ``analysis`` package needs it whole. Those parts import their
optional packages through :func:`require`, so that a core install fails there with one line naming what to install
(the gradeclip command prints it as its error; tests/test_packaging.py checks that every third-party import under
``gradeclip/`` is core or goes through here).
"""
from __future__ import annotations

import importlib
from types import ModuleType

# optional top-level module -> (its distribution on PyPI, the extra of gradeclip-study that installs it)
OPTIONAL = {
    "skimage": ("scikit-image", "study"),
    "segment_anything": ("segment-anything", "study"),
    # checked by analysis/__init__.py (gradeclip itself never imports them)
    "pandas": ("pandas", "study"),
    "scipy": ("scipy", "study"),
    "statsmodels": ("statsmodels", "study"),
}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message is one line naming the pip command that installs it."""


def require(modules: str | list[str], needed_for: str) -> ModuleType:
    """Import ``modules`` (names from :data:`OPTIONAL`, dotted submodules allowed) and return the first; if any is
    missing, raise :class:`MissingExtraError` naming every missing distribution and the extra to install."""
    names = [modules] if isinstance(modules, str) else list(modules)
    loaded, missing = [], []
    for name in names:
        distribution, extra = OPTIONAL[name.split(".")[0]]
        try:
            loaded.append(importlib.import_module(name))
        except ImportError:
            missing.append((distribution, extra))
    if missing:
        distributions = ", ".join(dict.fromkeys(d for d, _ in missing))
        extras = ",".join(dict.fromkeys(e for _, e in missing))
        raise MissingExtraError(f"{needed_for} needs {distributions}, which the core install leaves out: "
                                f"pip install \"gradeclip-study[{extras}]\"")
    return loaded[0]
