"""Figures of the §V study (seaborn on matplotlib's Agg canvas; no pyplot state, no display needed).

Each function takes the DataFrame produced by the matching analysis function and returns a
``matplotlib.figure.Figure``; the caller saves it (``fig.savefig("fig18.png", dpi=200)`` or ``.svg``).

* :func:`fig14` — addibility: map similarity to the base word vs. relative CLIP score (left), and
  relative phrase score vs. relative word score with OLS lines for mismatched / matched pairs (right).
* :func:`fig17` — mean word importance vs. log10 word frequency, coloured by concreteness.
* :func:`fig18` — mean word importance vs. concreteness with the OLS line.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .addibility import KINDS, fig14_pairs
from .stats import ols_fit

#: Fig. 14 markers and colours after the paper: base = yellow star, words = circles, phrases = "+".
KIND_STYLE = {
    "base word": {"marker": "*", "color": "#e6b800", "s": 220},
    "matched word": {"marker": "o", "color": "#2a9d8f", "s": 30},
    "mismatched word": {"marker": "o", "color": "#7b3fa0", "s": 30},
    "matched phrase": {"marker": "P", "color": "#2ca02c", "s": 50},
    "mismatched phrase": {"marker": "P", "color": "#d62728", "s": 50},
}
REL_SCORE_LABEL = "CLIP score relative to base word (score / base score)"
IMPORTANCE_LABEL = "mean word importance (per-sentence max = 1)"
CONCRETENESS_LABEL = "concreteness (Brysbaert 2014; 1 abstract … 5 concrete)"
FREQ_LABEL = "word frequency, Zipf (log10 occurrences per 10⁹ words, wordfreq)"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _fit_label(fit: dict) -> str:
    return f"slope {fit['slope']:.3g}, R² = {fit['r2']:.3f}, {_p_text(fit['slope_p'])}, n = {fit['n']}"


def _ols_line(ax, x: pd.Series, y: pd.Series, color: str, label_prefix: str = "OLS", **line_kw) -> dict | None:
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0:
        return None
    fit = ols_fit(x, y)
    xs = np.linspace(x[keep].min(), x[keep].max(), 50)
    ax.plot(xs, fit["intercept"] + fit["slope"] * xs, color=color, label=f"{label_prefix}: {_fit_label(fit)}",
            **line_kw)
    return fit


def fig14(points: pd.DataFrame) -> Figure:
    """Fig. 14 from :func:`analysis.addibility.fig14_points`."""
    fig = _figure(13, 6.5)
    grid = fig.add_gridspec(2, 2, width_ratios=[1.3, 1])
    left = fig.add_subplot(grid[:, 0])
    for kind in KINDS:
        sub = points[points["kind"] == kind]
        if sub.empty:
            continue
        style = KIND_STYLE[kind]
        left.scatter(sub["rel_score"], sub["map_similarity"], marker=style["marker"], c=style["color"],
                     s=style["s"], label=kind, alpha=0.8 if kind != "base word" else 1.0,
                     edgecolors="black" if kind == "base word" else "none", zorder=3 if kind == "base word" else 2)
    left.set_xlabel(REL_SCORE_LABEL)
    left.set_ylabel("heat-map cosine similarity to base word (0–1)")
    left.set_title("Map similarity vs. relative CLIP score")
    left.legend(loc="lower left", fontsize=8)

    pairs = fig14_pairs(points)
    for row, (ptype, color) in enumerate((("mismatched", "#d62728"), ("matched", "#2ca02c"))):
        ax = fig.add_subplot(grid[row, 1])
        sub = pairs[pairs["phrase_type"] == ptype]
        sns.scatterplot(data=sub, x="word_rel_score", y="phrase_rel_score", ax=ax, color=color, s=25,
                        edgecolor="none")
        _ols_line(ax, sub["word_rel_score"], sub["phrase_rel_score"], color="black", linestyle="--")
        ax.axhline(1.0, color="grey", linewidth=0.8, zorder=0)
        ax.axvline(1.0, color="grey", linewidth=0.8, zorder=0)
        ax.set_xlabel(f"{ptype} word: {REL_SCORE_LABEL}", fontsize=8)
        ax.set_ylabel(f"{ptype} phrase: relative score", fontsize=8)
        ax.set_title(f"{ptype.capitalize()} word vs. {ptype} phrase")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=7)
    return fig


def fig17(words: pd.DataFrame, x: str = "zipf", y: str = "mean_importance", hue: str = "concreteness",
          annotate: int = 0) -> Figure:
    """Fig. 17: importance vs. log frequency, points coloured by concreteness (continuous colour bar).

    ``annotate``: label the ``annotate`` most and least important words with their text.
    """
    data = words.dropna(subset=[x, y, hue])
    fig = _figure(8, 5.5)
    ax = fig.add_subplot()
    norm = mpl.colors.Normalize(vmin=1, vmax=5)
    sns.scatterplot(data=data, x=x, y=y, hue=hue, hue_norm=norm, palette="viridis", ax=ax, s=18,
                    edgecolor="none", legend=False)
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label=CONCRETENESS_LABEL)
    if annotate:
        ranked = data.sort_values(y)
        for _, r in pd.concat([ranked.head(annotate), ranked.tail(annotate)]).iterrows():
            ax.annotate(str(r["word"]), (r[x], r[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(FREQ_LABEL if x == "zipf" else x)
    ax.set_ylabel(IMPORTANCE_LABEL)
    ax.set_title(f"Word importance vs. frequency (n = {len(data)} words)")
    return fig


def fig18(words: pd.DataFrame, x: str = "concreteness", y: str = "mean_importance") -> Figure:
    """Fig. 18: importance vs. concreteness, with the OLS line (red dashed) and its statistics."""
    data = words.dropna(subset=[x, y])
    fig = _figure(7, 5.5)
    ax = fig.add_subplot()
    sns.scatterplot(data=data, x=x, y=y, ax=ax, s=18, color="#1f77b4", edgecolor="none", alpha=0.7)
    _ols_line(ax, data[x], data[y], color="red", linestyle="--", linewidth=2)
    ax.set_xlabel(CONCRETENESS_LABEL)
    ax.set_ylabel(IMPORTANCE_LABEL)
    ax.set_title(f"Word importance vs. concreteness (n = {len(data)} words)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8)
    return fig


#: Axis labels of the attribute metrics (with their units and direction).
ATTRIBUTE_METRIC_AXES = {
    "cosine": "cosine similarity map vs. mask (0–1, ↑)",
    "pearson": "Pearson r, map vs. mask pixels (↑)",
    "ot": "OT distance (fraction of image diagonal, ↓)",
    "kl": "KL(mask ‖ map) (nats, ↓)",
    "js": "JS divergence (nats, 0–ln 2, ↓)",
    "pointing": "pointing-game hit rate (0–1, ↑)",
    "mass_in_mask": "map mass inside the mask (fraction, ↑)",
    "energy_share": "mass on named object / on all objects (↑)",
}


def fig_attribute_metrics(stats: pd.DataFrame, ablation: pd.DataFrame | None = None,
                          metrics: tuple[str, ...] = ("cosine", "pearson", "ot", "kl", "js")) -> Figure:
    """Table IX as a figure: per metric, the mean of each attribute category with its 95% t-interval; with
    ``ablation`` (same long layout, grouped by ``variant``) a second row for the Appendix-B location ablation.

    stats: :func:`analysis.pipeline.category_stats` output (columns category, metric, mean, ci_low, ci_high, n).
    """
    rows = 2 if ablation is not None and len(ablation) else 1
    fig = _figure(3.0 * len(metrics), 3.2 * rows)
    axes = fig.subplots(rows, len(metrics), squeeze=False)
    for r, (data, by, title) in enumerate(((stats, "category", "attribute category"),
                                           (ablation, "variant", "Appendix B: text variant"))[:rows]):
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            sub = data[data["metric"] == metric]
            x = np.arange(len(sub))
            err = np.vstack([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]])
            ax.bar(x, sub["mean"], color=sns.color_palette("deep", len(sub)), yerr=np.nan_to_num(err),
                   capsize=3, edgecolor="black", linewidth=0.5)
            ax.set_xticks(x, [f"{k}\n(n={n})" for k, n in zip(sub[by], sub["n"])], fontsize=7)
            ax.set_ylabel(ATTRIBUTE_METRIC_AXES.get(metric, metric), fontsize=8)
            ax.set_xlabel(title, fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("Explanation map vs. ground-truth object mask (mean ± 95% t-interval)", fontsize=10)
    return fig
