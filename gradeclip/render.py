"""Pictures of explanations: heat-map overlays (jet colour map, 50/50 blend as in the official notebooks) and
word-importance figures. matplotlib only (Agg backend; no display needed)."""
from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours."""
    rgba = matplotlib.colormaps[cmap](np.clip(heatmap, 0.0, 1.0))
    return (rgba[..., :3] * 255 + 0.5).astype(np.uint8)


_BLOCK_PIXELS = 1 << 20


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """The heat map (same size as the image) blended over the image: alpha * colours + (1 - alpha) * image.

    Computed in blocks of rows: matplotlib's colour map returns float64 RGBA (32 bytes per pixel), so one pass over a
    10000 x 10000 image would hold ~6 GB of temporaries; blocks of ~1M pixels keep that to ~60 MB."""
    rgb = np.asarray(image.convert("RGB"))
    if heatmap.shape != rgb.shape[:2]:
        raise ValueError(f"heat map {heatmap.shape} does not match image {rgb.shape[:2]}")
    out = np.empty_like(rgb)
    rows = max(1, _BLOCK_PIXELS // max(1, rgb.shape[1]))
    for r in range(0, rgb.shape[0], rows):
        blended = (alpha * colorize(heatmap[r:r + rows], cmap).astype(np.float32)
                   + (1 - alpha) * rgb[r:r + rows].astype(np.float32))
        out[r:r + rows] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def word_importance_figure(words: Sequence[str], importance: Sequence[float], title: str = "",
                           cmap: str = "Greens") -> plt.Figure:
    """The sentence with each word's background shaded by its importance (as the paper's text maps), and a bar chart
    of the values underneath."""
    importance = np.asarray(importance, dtype=float)
    shade = importance / importance.max() if importance.size and importance.max() > 0 else np.zeros_like(importance)
    fig, (ax_text, ax_bar) = plt.subplots(2, 1, figsize=(max(4.0, 0.75 * len(words) + 1), 3.2),
                                          gridspec_kw={"height_ratios": [1, 2]})
    ax_text.axis("off")
    x = 0.01
    colours = matplotlib.colormaps[cmap]
    renderer = fig.canvas.get_renderer()
    for word, s in zip(words, shade):
        t = ax_text.text(x, 0.5, word, fontsize=12, va="center", ha="left", transform=ax_text.transAxes,
                         bbox=dict(facecolor=colours(0.15 + 0.85 * s), edgecolor="none", pad=2))
        box = t.get_window_extent(renderer=renderer).transformed(ax_text.transAxes.inverted())
        x = box.x1 + 0.01
    ax_bar.bar(range(len(words)), importance, color=[colours(0.15 + 0.85 * s) for s in shade], edgecolor="k")
    ax_bar.set_xticks(range(len(words)), list(words), rotation=45, ha="right")
    ax_bar.set_ylabel("word importance")
    if title:
        ax_text.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
