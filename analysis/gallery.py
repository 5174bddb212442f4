"""Heat-map galleries in the style of the paper's Fig. 13 (words vs. phrases) and Fig. 15 (attributes).

Everything comes in as numpy arrays — images (H×W×3 uint8), maps (any non-negative 2-D array; resampled to the
image bilinearly when smaller), masks (H×W bool) — so the caller decides how to read them (a workflow script
reads images with PIL, maps with ``analysis.pipeline.collect_maps``, masks with ``gradeclip``). Each map is
min-max normalised *for display only* (``gradeclip`` convention) and drawn over the image with a colour map;
mask outlines are drawn with ``contour`` at the 0.5 level.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib as mpl
import numpy as np
import pandas as pd

from .addibility import minmax_normalise
from .attributes import CATEGORY_ORDER, upsample_map
from .figures import _figure

#: Panel order of a Fig. 13 row (after the image): (label, design column, dashed box = mismatched).
ADDIBILITY_PANELS = (
    ("base word", "base", False),
    ("matched word", "matched", False),
    ("matched phrase", "matched_phrase", False),
    ("mismatched word", "mismatched", True),
    ("mismatched phrase", "mismatched_phrase", True),
)
HEAT_LABEL = "explanation heat (min-max per map, 0–1)"


@dataclass
class Panel:
    """One image panel: the image, optionally a heat map over it and a mask outline."""

    label: str
    heatmap: np.ndarray | None = None
    mask: np.ndarray | None = None  # bool H×W, outlined
    note: str = ""  # second title line, e.g. a score
    dashed: bool = False  # dashed frame (the paper's box around non-existent concepts)
    other_masks: Sequence[np.ndarray] = ()  # outlined thinly (the other objects)


@dataclass
class GalleryRow:
    image: np.ndarray
    panels: list[Panel] = field(default_factory=list)
    title: str = ""


def _display_map(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    if m.shape != tuple(shape):
        m = upsample_map(m, shape)
    return minmax_normalise(m)


def draw_panel(ax, image: np.ndarray, panel: Panel, cmap: str = "jet", alpha: float = 0.5) -> None:
    """Draw one panel on ``ax``: image, heat map overlay, mask outlines, title."""
    image = np.asarray(image)
    ax.imshow(image, interpolation="nearest")
    if panel.heatmap is not None:
        ax.imshow(_display_map(panel.heatmap, image.shape[:2]), cmap=cmap, alpha=alpha, vmin=0, vmax=1,
                  interpolation="bilinear")
    for m in panel.other_masks:
        if np.asarray(m).any():
            ax.contour(np.asarray(m, dtype=float), levels=[0.5], colors="white", linewidths=0.6)
    if panel.mask is not None and np.asarray(panel.mask).any():
        ax.contour(np.asarray(panel.mask, dtype=float), levels=[0.5], colors="lime", linewidths=1.4)
    ax.set_title(panel.label + (f"\n{panel.note}" if panel.note else ""), fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linestyle("--" if panel.dashed else "-")
        spine.set_linewidth(2.0 if panel.dashed else 0.5)
        spine.set_edgecolor("red" if panel.dashed else "black")


def heatmap_gallery(rows: Sequence[GalleryRow], *, panel_size: float = 1.9, cmap: str = "jet",
                    alpha: float = 0.5, title: str | None = None, image_label: str = "image"):
    """A grid figure: one row per :class:`GalleryRow` — the plain image, then its panels — with a shared
    colour bar. Rows may have different numbers of panels (empty cells are hidden)."""
    if not rows:
        raise ValueError("a gallery needs at least one row")
    ncols = 1 + max(len(r.panels) for r in rows)
    fig = _figure(panel_size * ncols + 1.0, panel_size * len(rows) + (0.5 if title else 0.2))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, row in enumerate(rows):
        draw_panel(axes[r, 0], row.image, Panel(row.title or image_label), cmap, alpha)
        for c in range(1, ncols):
            if c - 1 < len(row.panels):
                draw_panel(axes[r, c], row.image, row.panels[c - 1], cmap, alpha)
            else:
                axes[r, c].set_visible(False)
    fig.colorbar(mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0, 1), cmap=cmap), ax=axes, shrink=0.6,
                 label=HEAT_LABEL)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _score_note(scores: Mapping | None, key: tuple) -> str:
    if scores is None or key not in scores:
        return ""
    return f"CLIP score {float(scores[key]):.3f}"


def addibility_gallery_rows(design: pd.DataFrame, images: Mapping[Hashable, np.ndarray],
                            maps: Mapping[tuple[Hashable, str], np.ndarray],
                            scores: Mapping[tuple[Hashable, str], float] | None = None) -> list[GalleryRow]:
    """Fig. 13 rows: image | base word | matched word | matched phrase | mismatched word | mismatched phrase
    (mismatched panels in a dashed frame). Only design rows whose image is in ``images`` are drawn."""
    rows = []
    for r in design.itertuples(index=False):
        if r.image_id not in images:
            continue
        panels = []
        for label, col, dashed in ADDIBILITY_PANELS:
            text = getattr(r, col)
            key = (r.image_id, text)
            if key not in maps:
                raise KeyError(f"no map for {key!r}")
            panels.append(Panel(f"{label}: “{text}”", maps[key], note=_score_note(scores, key), dashed=dashed))
        rows.append(GalleryRow(images[r.image_id], panels, title=f"{r.image_id} ({r.group})"))
    return rows


def attribute_gallery_rows(attributes: pd.DataFrame, images: Mapping[Hashable, np.ndarray],
                           object_masks: Mapping[Hashable, Mapping[int, np.ndarray]],
                           maps: Mapping[tuple[Hashable, str], np.ndarray],
                           scores: Mapping[tuple[Hashable, str], float] | None = None,
                           categories: Sequence[str] = CATEGORY_ORDER, max_panels: int = 8) -> list[GalleryRow]:
    """Fig. 15 rows: per image, one panel per attribute text (category order) with the named object's mask
    outlined in green and the other objects in white.

    object_masks: ``image_id → {object_id: bool mask}`` (``analysis.pipeline.object_masks`` of the instance
    mask). ``max_panels`` caps the panels per image (first texts in category order).
    """
    rank = {c: k for k, c in enumerate(categories)}
    sel = attributes[attributes["category"].isin(categories)].copy()
    sel["_rank"] = sel["category"].map(rank)
    rows = []
    for image_id, g in sel.sort_values(["_rank", "object_id"], kind="mergesort").groupby("image_id", sort=False):
        if image_id not in images:
            continue
        objs = object_masks.get(image_id, {})
        panels = []
        for r in g.head(max_panels).itertuples(index=False):
            key = (image_id, r.text)
            if key not in maps:
                raise KeyError(f"no map for {key!r}")
            target = objs.get(int(r.object_id))
            others = [m for k, m in objs.items() if k != int(r.object_id)]
            note = " · ".join(x for x in (r.category, _score_note(scores, key)) if x)
            panels.append(Panel(f"“{r.text}”", maps[key], mask=target, note=note, other_masks=others))
        rows.append(GalleryRow(images[image_id], panels, title=str(image_id)))
    return rows


# ------------------------------------------------------------------------------ choosing what to show
def pick_images(table: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct image ids of ``table`` drawn with ``seed`` (kept in table order); all when fewer."""
    ids = list(dict.fromkeys(table["image_id"].astype(str)))
    if n >= len(ids):
        return ids
    pick = set(np.random.default_rng(seed).choice(len(ids), size=n, replace=False).tolist())
    return [i for k, i in enumerate(ids) if k in pick]


def addibility_gallery_keys(design: pd.DataFrame, image_ids) -> list[tuple[str, str]]:
    """The ``(image_id, text)`` maps :func:`addibility_gallery_rows` needs for these images."""
    ids = {str(i) for i in image_ids}
    return [(str(r.image_id), getattr(r, col)) for r in design.itertuples(index=False) if str(r.image_id) in ids
            for _, col, _ in ADDIBILITY_PANELS]


def attribute_gallery_keys(attributes: pd.DataFrame, image_ids, categories: Sequence[str] = CATEGORY_ORDER
                           ) -> list[tuple[str, str]]:
    """The ``(image_id, text)`` maps :func:`attribute_gallery_rows` needs for these images."""
    ids = {str(i) for i in image_ids}
    sel = attributes[attributes["image_id"].astype(str).isin(ids) & attributes["category"].isin(categories)]
    return list(dict.fromkeys(zip(sel["image_id"].astype(str), sel["text"])))
