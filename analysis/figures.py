"""Figures of the §V study (seaborn on matplotlib's Agg canvas; no pyplot state, no display needed).

Each function takes the DataFrame produced by the matching analysis function and returns a
``matplotlib.figure.Figure``; the caller saves it (``fig.savefig("fig18.png", dpi=200)`` or ``.svg``).

* :func:`fig14` — addibility: map similarity to the base word vs. relative CLIP score (left), and
  relative phrase score vs. relative word score with OLS lines for mismatched / matched pairs (right); on the
  paper's ratio scale or on the difference scale.
* :func:`fig17` — mean word importance vs. log10 word frequency, coloured by concreteness, every word labelled
  (labels placed by adjustText so that none overlaps another) when there are at most :data:`LABEL_ALL_MAX` words.
* :func:`fig18` — mean word importance vs. concreteness with the OLS line, its 95% confidence band and word labels.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
import statsmodels.api as sm
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .addibility import KINDS, SCALES, fig14_pairs
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
SCALE_LABELS = {"ratio": REL_SCORE_LABEL, "difference": "CLIP score minus base word's score"}
#: Fig. 17 / 18 label every word up to this many words (the toy world's vocabulary); beyond, the extremes only.
LABEL_ALL_MAX = 60
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


def fig14(points: pd.DataFrame, scale: str = "ratio") -> Figure:
    """Fig. 14 from :func:`analysis.addibility.fig14_points`, on the paper's ``"ratio"`` scale (score / base score)
    or on the ``"difference"`` scale (score - base score)."""
    column, xlabel = SCALES[scale], SCALE_LABELS[scale]
    reference = 1.0 if scale == "ratio" else 0.0
    fig = _figure(13, 6.5)
    grid = fig.add_gridspec(2, 2, width_ratios=[1.3, 1])
    left = fig.add_subplot(grid[:, 0])
    for kind in KINDS:
        sub = points[points["kind"] == kind]
        if sub.empty:
            continue
        style = KIND_STYLE[kind]
        left.scatter(sub[column], sub["map_similarity"], marker=style["marker"], c=style["color"],
                     s=style["s"], label=kind, alpha=0.8 if kind != "base word" else 1.0,
                     edgecolors="black" if kind == "base word" else "none", zorder=3 if kind == "base word" else 2)
    left.set_xlabel(xlabel)
    left.set_ylabel("heat-map cosine similarity to base word (0–1)")
    left.set_title(f"Map similarity vs. CLIP score ({scale} to the base word)")
    left.legend(loc="lower left", fontsize=8)

    pairs = fig14_pairs(points, scale)
    for row, (ptype, color) in enumerate((("mismatched", "#d62728"), ("matched", "#2ca02c"))):
        ax = fig.add_subplot(grid[row, 1])
        sub = pairs[pairs["phrase_type"] == ptype]
        sns.scatterplot(data=sub, x="word_rel_score", y="phrase_rel_score", ax=ax, color=color, s=25,
                        edgecolor="none")
        _ols_line(ax, sub["word_rel_score"], sub["phrase_rel_score"], color="black", linestyle="--")
        ax.axhline(reference, color="grey", linewidth=0.8, zorder=0)
        ax.axvline(reference, color="grey", linewidth=0.8, zorder=0)
        ax.set_xlabel(f"{ptype} word ({scale} to base)", fontsize=8)
        ax.set_ylabel(f"{ptype} phrase ({scale} to base)", fontsize=8)
        ax.set_title(f"{ptype.capitalize()} word vs. {ptype} phrase")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=7)
    return fig


def _labelled(data: pd.DataFrame, y: str, annotate: int | None) -> pd.DataFrame:
    """Rows to label: every row up to LABEL_ALL_MAX (``annotate`` None), else the ``annotate`` highest and lowest."""
    if annotate is None:
        annotate = len(data) if len(data) <= LABEL_ALL_MAX else 8
    if annotate >= len(data) / 2:
        return data
    ranked = data.sort_values(y)
    return pd.concat([ranked.head(annotate), ranked.tail(annotate)])


def label_points(ax, data: pd.DataFrame, x: str, y: str, label: str = "word") -> list:
    """Label each row's point with its ``label`` text, placed by adjustText so that no label overlaps another (or a
    point), with a thin line to the point when a label had to move. Returns the text artists."""
    from adjustText import adjust_text  # lazy: only the labelled figures (17, 18) need it

    texts = [ax.text(r[x], r[y], str(r[label]), fontsize=8) for _, r in data.iterrows()]
    if texts:
        adjust_text(texts, x=data[x].to_numpy(), y=data[y].to_numpy(), ax=ax, expand=(1.15, 1.35),
                    arrowprops=dict(arrowstyle="-", color="grey", lw=0.5), max_move=None, iter_lim=2000)
    return texts


def fig17(words: pd.DataFrame, x: str = "zipf", y: str = "mean_importance", hue: str = "concreteness",
          annotate: int | None = None) -> Figure:
    """Fig. 17: importance vs. log frequency, points coloured by concreteness (continuous colour bar), labelled with
    their words (``annotate`` None: all up to :data:`LABEL_ALL_MAX` words; a number: that many at each end)."""
    data = words.dropna(subset=[x, y, hue])
    fig = _figure(9, 6)
    ax = fig.add_subplot()
    norm = mpl.colors.Normalize(vmin=1, vmax=5)
    sns.scatterplot(data=data, x=x, y=y, hue=hue, hue_norm=norm, palette="viridis", ax=ax, s=30,
                    edgecolor="black", linewidth=0.3, legend=False)
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label=CONCRETENESS_LABEL)
    ax.set_xlabel(FREQ_LABEL if x == "zipf" else x)
    ax.set_ylabel(IMPORTANCE_LABEL)
    ax.set_title(f"Word importance vs. frequency (n = {len(data)} words)")
    label_points(ax, _labelled(data, y, annotate), x, y)
    return fig


def fig18(words: pd.DataFrame, x: str = "concreteness", y: str = "mean_importance",
          annotate: int | None = None) -> Figure:
    """Fig. 18: importance vs. concreteness, with the OLS line (red dashed), its 95% confidence band (the mean's
    interval, statsmodels ``get_prediction``), its statistics, and word labels as in :func:`fig17`."""
    data = words.dropna(subset=[x, y])
    fig = _figure(8, 6)
    ax = fig.add_subplot()
    sns.scatterplot(data=data, x=x, y=y, ax=ax, s=30, color="#1f77b4", edgecolor="black", linewidth=0.3, alpha=0.8)
    fit = _ols_line(ax, data[x], data[y], color="red", linestyle="--", linewidth=2)
    if fit is not None:
        model = sm.OLS(data[y].to_numpy(float), sm.add_constant(data[x].to_numpy(float))).fit()
        xs = np.linspace(data[x].min(), data[x].max(), 100)
        band = model.get_prediction(sm.add_constant(xs)).summary_frame(alpha=0.05)
        ax.fill_between(xs, band["mean_ci_lower"], band["mean_ci_upper"], color="red", alpha=0.15,
                        label="95% confidence band of the OLS line")
    ax.set_xlabel(CONCRETENESS_LABEL)
    ax.set_ylabel(IMPORTANCE_LABEL)
    ax.set_title(f"Word importance vs. concreteness (n = {len(data)} words)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8)
    label_points(ax, _labelled(data, y, annotate), x, y)
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


CHANCE_STYLE = {"uniform": {"marker": "_", "color": "black", "label": "uniform map"},
                "wrong object": {"marker": "x", "color": "#d62728", "label": "wrong-object map"}}


def fig_attribute_metrics(stats: pd.DataFrame, ablation: pd.DataFrame | None = None,
                          metrics: tuple[str, ...] = ("cosine", "pearson", "ot", "kl", "js"),
                          chance: pd.DataFrame | None = None) -> Figure:
    """Table IX as a figure: per metric, the mean of each attribute category with its 95% t-interval, and the chance
    levels as markers when ``chance`` is given (long: category, map, metric, value); with ``ablation`` (same long
    layout as ``stats``, grouped by ``variant``) a second row for the Appendix-B location ablation.

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
            if r == 0 and chance is not None and len(chance):
                for kind, style in CHANCE_STYLE.items():
                    level = chance[(chance["map"] == kind) & (chance["metric"] == metric)].set_index("category")
                    ys = level["value"].reindex(sub[by]).to_numpy(dtype=float)
                    ax.scatter(x, ys, marker=style["marker"], color=style["color"], s=120, zorder=5,
                               linewidths=2, label=style["label"])
                if c == 0:
                    ax.legend(fontsize=7, loc="best")
            ax.set_xticks(x, [f"{k}\n(n={n})" for k, n in zip(sub[by], sub["n"])], fontsize=7)
            ax.set_ylabel(ATTRIBUTE_METRIC_AXES.get(metric, metric), fontsize=8)
            ax.set_xlabel(title, fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("Explanation map vs. ground-truth object mask (mean ± 95% t-interval over texts; markers: chance "
                 "levels)", fontsize=10)
    return fig
