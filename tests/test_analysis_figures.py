"""analysis.figures: each figure builds from its table, is labelled, carries its fit line, and saves."""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import figures as F
from analysis.addibility import DESIGN_COLUMNS, fig14_points


def _fig14_inputs(n=10, seed=0):
    rng = np.random.default_rng(seed)
    design, maps, scores = [], {}, {}
    for i in range(n):
        img, texts = f"i{i}", [f"b{i}", f"m{i}", f"x{i}", f"m{i} b{i}", f"x{i} b{i}"]
        design.append((img, "adj+noun", *texts))
        for t in texts:
            maps[(img, t)] = rng.random((7, 7))
            scores[(img, t)] = rng.uniform(0.2, 0.3)
    return pd.DataFrame(design, columns=list(DESIGN_COLUMNS)), maps, scores


def _words(n=40, seed=1):
    rng = np.random.default_rng(seed)
    conc = rng.uniform(1, 5, n)
    return pd.DataFrame({"word": [f"w{i}" for i in range(n)], "concreteness": conc,
                         "zipf": rng.uniform(3, 7, n), "mean_importance": 0.1 * conc + rng.normal(0, 0.05, n)})


def _labels(fig):
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_fig14(tmp_path):
    fig = F.fig14(fig14_points(*_fig14_inputs()))
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    for xlabel, ylabel in _labels(fig):
        assert xlabel and ylabel
    assert all(len(ax.get_lines()) >= 1 for ax in fig.axes[1:])  # OLS line on both right panels
    assert "R²" in fig.axes[1].get_legend().get_texts()[0].get_text()
    fig.savefig(tmp_path / "fig14.png", dpi=60)
    assert (tmp_path / "fig14.png").stat().st_size > 1000


def test_fig17_and_fig18(tmp_path):
    words = _words()
    f17 = F.fig17(words, annotate=2)
    assert len(f17.axes) == 2  # scatter + colour bar for concreteness
    assert "Zipf" in f17.axes[0].get_xlabel() and "importance" in f17.axes[0].get_ylabel()
    assert "concreteness" in f17.axes[1].get_ylabel()
    f18 = F.fig18(words)
    ax = f18.axes[0]
    assert "concreteness" in ax.get_xlabel() and "importance" in ax.get_ylabel()
    (line,) = ax.get_lines()
    assert line.get_linestyle() == "--" and line.get_color() == "red"
    x, y = line.get_data()
    slope = (y[-1] - y[0]) / (x[-1] - x[0])
    assert abs(slope - np.polyfit(words["concreteness"], words["mean_importance"], 1)[0]) < 1e-9
    for name, fig in (("f17.svg", f17), ("f18.png", f18)):
        fig.savefig(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000


def test_fig14_on_the_difference_scale():
    fig = F.fig14(fig14_points(*_fig14_inputs()), scale="difference")
    assert "minus" in fig.axes[0].get_xlabel()
    assert "difference" in fig.axes[1].get_xlabel()


def _label_boxes(fig, ax):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}


def _overlaps(boxes):
    items = list(boxes.items())
    return [(a, b) for i, (a, ba) in enumerate(items) for b, bb in items[i + 1:] if ba.overlaps(bb)]


def test_fig17_and_fig18_label_every_word_without_overlap():
    """The toy world's vocabulary is small: every point carries its word and no label covers another, even for
    words whose points nearly coincide."""
    words = _words(n=17, seed=4)
    words.loc[1, ["zipf", "mean_importance", "concreteness"]] = words.loc[0, ["zipf", "mean_importance",
                                                                              "concreteness"]] + 1e-3
    for fig in (F.fig17(words), F.fig18(words)):
        ax = fig.axes[0]
        boxes = _label_boxes(fig, ax)
        assert set(boxes) == set(words["word"])
        assert not _overlaps(boxes)
    # many words: only the extremes are labelled
    many = _words(n=200, seed=5)
    assert len(F.fig17(many).axes[0].texts) == 16


def test_the_studys_figures_label_every_word():
    """The workflow's Figs. 17 and 18 (analysis.pipeline.concreteness_figures) label all of the toy world's 17 words,
    the median word included (a fixed 8-per-end labelled 16 of them)."""
    from types import SimpleNamespace

    from analysis.pipeline import concreteness_figures

    words = _words(n=17, seed=4)
    for name, fig in concreteness_figures(SimpleNamespace(words=words)).items():
        assert sorted(t.get_text() for t in fig.axes[0].texts) == sorted(words["word"]), name


def test_fig18_draws_the_confidence_band_around_the_line():
    words = _words()
    ax = F.fig18(words).axes[0]
    (band,) = [c for c in ax.collections if "confidence band" in str(c.get_label())]
    (path,) = band.get_paths()
    ys = path.vertices[:, 1]
    line_y = ax.get_lines()[0].get_data()[1]
    assert ys.min() < line_y.min() and ys.max() > line_y.max()
