"""Heat-map galleries after the paper's Fig. 13 (words vs. phrases), Fig. 15 (attributes of one image) and Fig. 16
(the ground-truth masks next to the maps).

Everything comes in as numpy arrays — images (H×W×3 uint8), maps (any non-negative 2-D array; resampled to the
image bilinearly when smaller), masks (H×W bool) — and word importances as ``[(word, importance), ...]``, so the
caller decides how to read them (``analysis.pipeline.study_galleries`` reads the workflow's files).

Colour scale: the maps of one gallery row (Fig. 13) or of the whole figure (Figs. 15, 16: one image) share one
scale, the raw map divided by the largest value among them, so that a map with almost no mass looks almost empty
next to a strong one; each panel prints its own peak (the map's maximum) as well. ``scale="panel"`` min-max
normalises each map on its own instead (every map then reaches the top of the colour bar).

Text heat maps: under a panel whose text has word importances, each word is drawn on a background coloured by its
importance relative to the text's most important word (the paper's text heat maps).
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
#: Fig. 15's rows, in the paper's order: (a) shape, (b) material, (c) color, (d) size, (e) position.
FIG15_ROWS = ("shape", "material", "color", "size", "location")
SCALE_LABELS = {"row": "explanation heat (raw map / largest value in its row)",
                "figure": "explanation heat (raw map / largest value in the figure)",
                "panel": "explanation heat (min-max per map, 0–1)"}
WORD_CMAP = "Reds"
TITLE_SIZE = 12
NOTE_SIZE = 10


@dataclass
class Panel:
    """One image panel: the image, optionally a heat map over it, mask outlines and the text's word importances."""

    label: str
    heatmap: np.ndarray | None = None
    mask: np.ndarray | None = None  # bool H×W, outlined
    note: str = ""  # second title line, e.g. a score
    dashed: bool = False  # dashed frame (the paper's box around non-existent concepts)
    other_masks: Sequence[np.ndarray] = ()  # outlined thinly (the other objects)
    words: Sequence[tuple[str, float]] | None = None  # text heat map under the panel
    show_mask_only: bool = False  # Fig. 16: the mask itself instead of a heat map


@dataclass
class GalleryRow:
    image: np.ndarray
    panels: list[Panel] = field(default_factory=list)
    title: str = ""


def _resampled(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    return upsample_map(m, shape) if m.shape != tuple(shape) else m


def peak_note(heatmap: np.ndarray) -> str:
    """The panel's printed peak: the raw map's maximum (3 significant digits)."""
    return f"peak {float(np.max(heatmap)):.3g}"


def draw_panel(ax, image: np.ndarray, panel: Panel, vmax: float | None = None, cmap: str = "jet",
               alpha: float = 0.5) -> None:
    """Draw one panel on ``ax``: image, heat map overlay (raw / ``vmax``, or min-max per map when ``vmax`` is None),
    mask outlines, title."""
    image = np.asarray(image)
    if panel.show_mask_only and panel.mask is not None:  # the binary ground-truth mask, white on black
        ax.imshow(np.asarray(panel.mask, dtype=float), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    if panel.heatmap is not None and not panel.show_mask_only:
        m = _resampled(panel.heatmap, image.shape[:2])
        shown = minmax_normalise(m) if vmax is None else (m / vmax if vmax > 0 else np.zeros_like(m))
        ax.imshow(shown, cmap=cmap, alpha=alpha, vmin=0, vmax=1, interpolation="bilinear")
    for m in panel.other_masks:
        if np.asarray(m).any():
            ax.contour(np.asarray(m, dtype=float), levels=[0.5], colors="white", linewidths=0.8)
    if panel.mask is not None and np.asarray(panel.mask).any() and not panel.show_mask_only:
        ax.contour(np.asarray(panel.mask, dtype=float), levels=[0.5], colors="lime", linewidths=1.6)
    ax.set_title(panel.label, fontsize=TITLE_SIZE)
    if panel.note:
        ax.set_xlabel(panel.note, fontsize=NOTE_SIZE, labelpad=2)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linestyle("--" if panel.dashed else "-")
        spine.set_linewidth(2.0 if panel.dashed else 0.5)
        spine.set_edgecolor("red" if panel.dashed else "black")


def draw_words(ax, words: Sequence[tuple[str, float]], cmap: str = WORD_CMAP, fontsize: float = 10) -> None:
    """A text heat map on ``ax``: the words left to right, each on a box coloured by importance / the text's largest
    importance (negative importances count as 0). Words are chained one after the other (each placed at the right
    end of the previous one), centred as a line."""
    ax.set_axis_off()
    if not words:
        return
    values = np.clip(np.array([v for _, v in words], dtype=float), 0.0, None)
    top = values.max()
    rel = values / top if top > 0 else np.zeros_like(values)
    colormap = mpl.colormaps[cmap]
    previous = None
    for (word, _), r in zip(words, rel):
        box = dict(boxstyle="square,pad=0.15", facecolor=colormap(0.1 + 0.8 * r), edgecolor="none")
        color = "white" if r > 0.6 else "black"
        if previous is None:
            previous = ax.annotate(word, xy=(0.0, 0.5), xycoords="axes fraction", va="center", ha="left",
                                   fontsize=fontsize, bbox=box, color=color, annotation_clip=False)
        else:
            previous = ax.annotate(word, xy=(1.0, 0.0), xycoords=previous,
                                   xytext=(4, 0), textcoords="offset points", va="bottom", ha="left",
                                   fontsize=fontsize, bbox=box, color=color, annotation_clip=False)


def _grid(fig, n_rows: int, n_cols: int, words: bool):
    """Axes for a gallery: per row an image axis per column and, with ``words``, a thin axis under it."""
    if not words:
        return fig.subplots(n_rows, n_cols, squeeze=False), None
    spec = fig.add_gridspec(2 * n_rows, n_cols, height_ratios=[1.0, 0.16] * n_rows)
    images = np.empty((n_rows, n_cols), dtype=object)
    texts = np.empty((n_rows, n_cols), dtype=object)
    for r in range(n_rows):
        for c in range(n_cols):
            images[r, c] = fig.add_subplot(spec[2 * r, c])
            texts[r, c] = fig.add_subplot(spec[2 * r + 1, c])
            texts[r, c].set_axis_off()
    return images, texts


def heatmap_gallery(rows: Sequence[GalleryRow], *, panel_size: float = 2.3, cmap: str = "jet",
                    alpha: float = 0.5, title: str | None = None, image_label: str = "image",
                    scale: str = "row", row_labels: Sequence[str] | None = None):
    """A grid figure: one row per :class:`GalleryRow` — the plain image, then its panels — with a colour bar.

    scale: ``"row"`` (each row's maps share a scale: raw / the row's largest value), ``"figure"`` (one scale for
    every map of the figure) or ``"panel"`` (min-max per map). Each heat-map panel prints its peak. Panels with
    ``words`` get a text heat map under them. Rows may have different numbers of panels (empty cells hidden).
    ``row_labels``: a label on the left of each row (Fig. 15's attribute types)."""
    if not rows:
        raise ValueError("a gallery needs at least one row")
    if scale not in SCALE_LABELS:
        raise ValueError(f"scale must be one of {sorted(SCALE_LABELS)}, got {scale!r}")
    ncols = 1 + max(len(r.panels) for r in rows)
    with_words = any(p.words for r in rows for p in r.panels)
    height = panel_size * 1.18 * len(rows) * (1.16 if with_words else 1.0) + (0.5 if title else 0.2)
    fig = _figure(panel_size * ncols + 1.2, height)
    axes, word_axes = _grid(fig, len(rows), ncols, with_words)

    def peak(p):
        return float(np.max(p.heatmap)) if p.heatmap is not None and not p.show_mask_only else 0.0

    figure_max = max((peak(p) for r in rows for p in r.panels), default=0.0)
    for r, row in enumerate(rows):
        row_max = max((peak(p) for p in row.panels), default=0.0)
        vmax = {"row": row_max, "figure": figure_max, "panel": None}[scale]
        draw_panel(axes[r, 0], row.image, Panel(row.title or image_label), cmap=cmap, alpha=alpha)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=TITLE_SIZE + 1, fontweight="bold")
        for c in range(1, ncols):
            if c - 1 < len(row.panels):
                panel = row.panels[c - 1]
                if panel.heatmap is not None and not panel.show_mask_only and not panel.note:
                    panel = Panel(**{**panel.__dict__, "note": peak_note(panel.heatmap)})
                draw_panel(axes[r, c], row.image, panel, vmax=vmax, cmap=cmap, alpha=alpha)
                if word_axes is not None:
                    draw_words(word_axes[r, c], panel.words or ())
            else:
                axes[r, c].set_visible(False)
                if word_axes is not None:
                    word_axes[r, c].set_visible(False)
    fig.colorbar(mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0, 1), cmap=cmap), ax=list(axes.ravel()),
                 shrink=0.5, label=SCALE_LABELS[scale])
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE + 1)
    return fig


def _score_note(scores: Mapping | None, key: tuple, heatmap: np.ndarray | None = None) -> str:
    parts = []
    if heatmap is not None:
        parts.append(peak_note(heatmap))
    if scores is not None and key in scores:
        parts.append(f"score {float(scores[key]):.3f}")
    return " · ".join(parts)


def addibility_gallery_rows(design: pd.DataFrame, images: Mapping[Hashable, np.ndarray],
                            maps: Mapping[tuple[Hashable, str], np.ndarray],
                            scores: Mapping[tuple[Hashable, str], float] | None = None,
                            words: Mapping[tuple[Hashable, str], Sequence[tuple[str, float]]] | None = None
                            ) -> list[GalleryRow]:
    """Fig. 13 rows: image | base word | matched word | matched phrase | mismatched word | mismatched phrase
    (mismatched panels in a dashed frame), each with its peak and CLIP score, and its text heat map when ``words``
    has it. Only design rows whose image is in ``images`` are drawn."""
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
            panels.append(Panel(f"{label}:\n“{text}”", maps[key], note=_score_note(scores, key, maps[key]),
                                dashed=dashed, words=(words or {}).get(key)))
        rows.append(GalleryRow(images[r.image_id], panels, title=f"{r.image_id}\n({r.group})"))
    return rows


def attribute_gallery_rows(attributes: pd.DataFrame, images: Mapping[Hashable, np.ndarray],
                           object_masks: Mapping[Hashable, Mapping[int, np.ndarray]],
                           maps: Mapping[tuple[Hashable, str], np.ndarray],
                           scores: Mapping[tuple[Hashable, str], float] | None = None,
                           categories: Sequence[str] = FIG15_ROWS, max_panels: int = 6,
                           words: Mapping[tuple[Hashable, str], Sequence[tuple[str, float]]] | None = None,
                           with_ablation: bool = True) -> tuple[list[GalleryRow], list[str]]:
    """Fig. 15 rows for one image each in ``images``: one row per attribute type (the paper's order), the image then
    one panel per text of that type (named object outlined in green, the others in white); the location row also
    shows the Appendix-B ablation texts ("sphere", "left") when ``with_ablation``. Returns (rows, row labels).

    object_masks: ``image_id → {object_id: bool mask}`` (``analysis.pipeline.object_masks`` of the instance mask).
    ``max_panels`` caps the panels per row.
    """
    out, labels = [], []
    for image_id in images:
        sel = attributes[attributes["image_id"].astype(str) == str(image_id)]
        objs = object_masks.get(image_id, {})
        for category in categories:
            wanted = [category] + (["location_ablation"] if category == "location" and with_ablation else [])
            g = sel[sel["category"].isin(wanted)]
            if g.empty:
                continue
            if category == "location" and with_ablation:  # one object, its text and the two ablation texts
                first = g.loc[g["category"] == category, "object_id"].iloc[0] if (g["category"] == category).any() \
                    else g["object_id"].iloc[0]
                g = g[g["object_id"] == first]
            g = g.assign(_main=g["category"] != category).sort_values(["_main", "object_id"], kind="mergesort")
            panels = []
            for r in g.head(max_panels).itertuples(index=False):
                key = (image_id, r.text)
                if key not in maps:
                    raise KeyError(f"no map for {key!r}")
                target = objs.get(int(r.object_id))
                others = [m for k, m in objs.items() if k != int(r.object_id)]
                panels.append(Panel(f"“{r.text}”", maps[key], mask=target, note=_score_note(scores, key, maps[key]),
                                    other_masks=others, words=(words or {}).get(key)))
            out.append(GalleryRow(images[image_id], panels, title=str(image_id)))
            labels.append(f"({'abcde'[FIG15_ROWS.index(category)] if category in FIG15_ROWS else '?'}) {category}")
    return out, labels


def mask_map_rows(attributes: pd.DataFrame, image_id: Hashable, image: np.ndarray,
                  object_masks: Mapping[int, np.ndarray], maps: Mapping[tuple[Hashable, str], np.ndarray],
                  categories: Sequence[str] = CATEGORY_ORDER) -> list[GalleryRow]:
    """Fig. 16: for one image and the first text of each attribute category, the ground-truth mask of the object
    the text names (top row) above the text's heat map (bottom row)."""
    sel = attributes[(attributes["image_id"].astype(str) == str(image_id))]
    chosen = [sel[sel["category"] == c].sort_values("object_id", kind="mergesort").iloc[0]
              for c in categories if (sel["category"] == c).any()]
    masks, heat = [], []
    for r in chosen:
        key = (image_id, r["text"])
        if key not in maps:
            raise KeyError(f"no map for {key!r}")
        target = object_masks.get(int(r["object_id"]))
        masks.append(Panel(f"mask: “{r['text']}”", mask=target, note=r["category"], show_mask_only=True))
        heat.append(Panel(f"map: “{r['text']}”", maps[key], mask=target))
    return [GalleryRow(image, masks, title=f"{image_id}\nground truth"), GalleryRow(image, heat, title="Grad-ECLIP")]


# ------------------------------------------------------------------------------ choosing what to show
def pick_images(table: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct image ids of ``table`` drawn with ``seed`` (kept in table order); all when fewer."""
    ids = list(dict.fromkeys(table["image_id"].astype(str)))
    if n >= len(ids):
        return ids
    pick = set(np.random.default_rng(seed).choice(len(ids), size=n, replace=False).tolist())
    return [i for k, i in enumerate(ids) if k in pick]


def richest_image(attributes: pd.DataFrame, categories: Sequence[str] = FIG15_ROWS) -> str | None:
    """The image Figs. 15 and 16 show: the one with texts in the most attribute categories, then the most texts
    (ties: the first in table order). None for an empty table."""
    sel = attributes[attributes["category"].isin(categories)]
    if sel.empty:
        return None
    ids = sel["image_id"].astype(str)
    stats = pd.DataFrame({"categories": sel.groupby(ids)["category"].nunique(), "texts": sel.groupby(ids).size()})
    order = {i: k for k, i in enumerate(dict.fromkeys(ids))}
    stats["order"] = [-order[i] for i in stats.index]
    return str(stats.sort_values(["categories", "texts", "order"], ascending=False).index[0])


def addibility_gallery_keys(design: pd.DataFrame, image_ids) -> list[tuple[str, str]]:
    """The ``(image_id, text)`` maps :func:`addibility_gallery_rows` needs for these images."""
    ids = {str(i) for i in image_ids}
    return [(str(r.image_id), getattr(r, col)) for r in design.itertuples(index=False) if str(r.image_id) in ids
            for _, col, _ in ADDIBILITY_PANELS]


def attribute_gallery_keys(attributes: pd.DataFrame, image_ids, categories: Sequence[str] = FIG15_ROWS,
                           with_ablation: bool = True) -> list[tuple[str, str]]:
    """The ``(image_id, text)`` maps :func:`attribute_gallery_rows` needs for these images."""
    ids = {str(i) for i in image_ids}
    wanted = list(categories) + (["location_ablation"] if with_ablation else [])
    sel = attributes[attributes["image_id"].astype(str).isin(ids) & attributes["category"].isin(wanted)]
    return list(dict.fromkeys(zip(sel["image_id"].astype(str), sel["text"])))


def gallery_plan(addibility: pd.DataFrame, attributes: pd.DataFrame, n_images: int, seed: int = 0) -> dict:
    """What the galleries show: ``{"fig13": [image ids], "fig15": image id or None}`` — ``n_images`` seeded images of
    the addibility design, and the richest image of the attribute design (:func:`richest_image`)."""
    fig13 = pick_images(addibility, n_images, seed) if len(addibility) and n_images > 0 else []
    fig15 = richest_image(attributes) if len(attributes) and n_images > 0 else None
    return {"fig13": fig13, "fig15": fig15}


def gallery_text_jobs(addibility: pd.DataFrame, attributes: pd.DataFrame, images: pd.DataFrame, plan: Mapping
                      ) -> pd.DataFrame:
    """The texts whose word importances the galleries draw (every panel of Figs. 13 and 15), as text jobs:
    columns ``caption_id`` (``image_id|text``), ``image_id``, ``path``, ``text``; one image's texts adjacent."""
    keys = addibility_gallery_keys(addibility, plan["fig13"]) if len(addibility) else []
    if plan.get("fig15") is not None:
        keys += attribute_gallery_keys(attributes, [plan["fig15"]])
    paths = dict(zip(images["image_id"].astype(str), images["path"]))
    rows = [{"caption_id": f"{i}|{t}", "image_id": i, "path": paths[i], "text": t} for i, t in dict.fromkeys(keys)]
    out = pd.DataFrame(rows, columns=["caption_id", "image_id", "path", "text"])
    return out.sort_values("image_id", kind="mergesort").reset_index(drop=True)


def word_importances(table: pd.DataFrame) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """``{(image_id, text): [(word, importance), ...]}`` from word-importance rows (``gradeclip.batch`` CSV
    columns): the words of each text in order, punctuation left out."""
    out: dict[tuple[str, str], list[tuple[str, float]]] = {}
    rows = table[table["is_word"].astype(int) == 1] if "is_word" in table else table
    for (image_id, text), g in rows.sort_values("word_index", kind="mergesort").groupby(["image_id", "text"],
                                                                                        sort=False):
        out[(str(image_id), str(text))] = list(zip(g["word"].astype(str), g["importance"].astype(float)))
    return out
