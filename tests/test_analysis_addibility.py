"""analysis.addibility: normalisation, combinations, Table VIII and Fig. 14 data on known inputs."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import addibility as AD


def test_minmax_normalise():
    np.testing.assert_allclose(AD.minmax_normalise(np.array([[2.0, 4.0], [6.0, 10.0]])),
                               [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(AD.minmax_normalise(np.full((2, 2), 3.0)), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        AD.minmax_normalise(np.array([np.nan, 1.0]))


def test_combinations_on_known_arrays():
    a = np.array([[0.0, 2.0], [4.0, 4.0]])  # → [[0, .5], [1, 1]]
    b = np.array([[1.0, 3.0], [1.0, 2.0]])  # → [[0, 1], [0, .5]]
    np.testing.assert_allclose(AD.combine_maps(a, b, "add"), [[0.0, 1.5], [1.0, 1.5]])
    np.testing.assert_allclose(AD.combine_maps(a, b, "multiply"), [[0.0, 0.5], [0.0, 0.5]])
    np.testing.assert_allclose(AD.combine_maps(a, b, "maximum"), [[0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError):
        AD.combine_maps(a, b, "mean")
    with pytest.raises(ValueError):
        AD.combine_maps(a, np.ones((3, 3)), "add")


def _word_maps(rng, shape=(14, 14)):
    a, b = rng.random(shape), rng.random(shape)
    a[0, 0] = b[0, 0] = 0.0  # shared minimum location, like the background of ReLU maps
    return a, b


def test_add_scores_cosine_one_when_phrase_is_normalised_sum():
    rng = np.random.default_rng(0)
    a, b = _word_maps(rng)
    phrase = 3.0 * (AD.minmax_normalise(a) + AD.minmax_normalise(b))
    s = AD.addibility_scores(a, b, phrase)
    assert s["add"] == pytest.approx(1.0)
    assert s["multiply"] < s["add"] and s["maximum"] < s["add"]


def test_multiply_wins_when_phrase_is_product():
    rng = np.random.default_rng(1)
    a, b = _word_maps(rng)
    s = AD.addibility_scores(a, b, AD.minmax_normalise(a) * AD.minmax_normalise(b))
    assert s["multiply"] == pytest.approx(1.0) and s["add"] < 1.0


def test_cosine_with_empty_map_is_nan():
    assert math.isnan(AD.map_cosine(np.zeros((3, 3)), np.ones((3, 3))))
    assert AD.map_cosine(np.eye(3), np.eye(3)) == pytest.approx(1.0)
    assert AD.map_cosine(np.eye(2), np.fliplr(np.eye(2))) == pytest.approx(0.0)


def _design_and_maps(n=12, seed=2):
    """Synthetic study where phrase maps are sums of word maps plus noise, and CLIP scores follow the paper's
    pattern: mismatched phrase ≈ base, matched phrase ≈ base + (matched word - base)."""
    rng = np.random.default_rng(seed)
    design, maps, scores = [], {}, {}
    for i in range(n):
        img = f"img{i}"
        group = "adj+noun" if i % 2 else "verb+noun"
        base, mw, xw = f"noun{i}", f"good{i}", f"bad{i}"
        mp, xp = f"{mw} {base}", f"{xw} {base}"
        design.append((img, group, base, mw, xw, mp, xp))
        base_map, m_map, x_map = _word_maps(rng)[0], rng.random((14, 14)), rng.random((14, 14)) * 0.2
        maps.update({(img, base): base_map, (img, mw): m_map, (img, xw): x_map})
        for phrase, word_map in ((mp, m_map), (xp, x_map)):
            maps[(img, phrase)] = (AD.minmax_normalise(base_map) + AD.minmax_normalise(word_map)
                                   + rng.normal(0, 0.05, (14, 14))).clip(0)
        s_base = rng.uniform(0.25, 0.3)
        s_m = s_base * rng.uniform(0.9, 1.1)
        s_x = s_base * rng.uniform(0.6, 0.9)
        scores.update({(img, base): s_base, (img, mw): s_m, (img, xw): s_x,
                       (img, mp): s_base + 0.8 * (s_m - s_base) + 0.01 * s_base,
                       (img, xp): s_base * rng.uniform(0.95, 1.0)})
    return pd.DataFrame(design, columns=list(AD.DESIGN_COLUMNS)), maps, scores


def test_addibility_table_and_table_viii():
    design, maps, _ = _design_and_maps()
    long = AD.addibility_table(design, maps)
    assert len(long) == len(design) * 2 * 3
    assert set(long.columns) == {"image_id", "group", "phrase_type", "phrase", "method", "cosine"}
    t8 = AD.table_viii(long)
    assert list(t8.index) == ["add", "multiply", "maximum"]
    cells = t8[[c for c in t8.columns if c[0] in AD.PHRASE_TYPES]]
    assert set(cells.columns) == {(p, g) for p in AD.PHRASE_TYPES for g in AD.GROUPS}
    assert (cells.loc["add"] > cells.loc["multiply"]).all()
    assert (cells.loc["add"] > 0.95).all()
    assert math.isnan(t8.loc["add", ("p vs add", "")])
    assert t8.loc["multiply", ("p vs add", "")] < 1e-3
    assert t8.loc["multiply", ("n pairs", "")] == 24
    # the p-value is scipy's paired t-test over (image, phrase type) pairs
    wide = long.pivot_table(index=["image_id", "phrase_type"], columns="method", values="cosine")
    assert t8.loc["maximum", ("p vs add", "")] == pytest.approx(sps.ttest_rel(wide["maximum"], wide["add"]).pvalue)


def test_method_ttests_by_cell():
    design, maps, _ = _design_and_maps()
    tests = AD.method_ttests(AD.addibility_table(design, maps), by=("group", "phrase_type"))
    assert len(tests) == 4 * 3 and set(tests.loc[tests.method != "add", "n"]) == {6}


def test_fig14_points_and_regressions():
    design, maps, scores = _design_and_maps(n=30)
    pts = AD.fig14_points(design, maps, scores)
    assert len(pts) == 30 * 5 and set(pts["kind"]) == set(AD.KINDS)
    base = pts[pts.kind == "base word"]
    assert (base["rel_score"] == 1.0).all() and np.allclose(base["map_similarity"], 1.0)
    assert (pts.loc[pts.kind == "mismatched word", "rel_score"] < 1).all()
    # the DataFrame form of the scores gives the same result
    sdf = pd.DataFrame([(k[0], k[1], v) for k, v in scores.items()], columns=["image_id", "text", "score"])
    pd.testing.assert_frame_equal(AD.fig14_points(design, maps, sdf), pts)
    pairs = AD.fig14_pairs(pts)
    assert len(pairs) == 60 and set(pairs.phrase_type) == {"matched", "mismatched"}
    reg = AD.fig14_regressions(pts).set_index("phrase_type")
    # matched phrase score was built as base + 0.8 (matched - base) + const: slope 0.8 exactly, R² = 1
    assert reg.loc["matched", "slope"] == pytest.approx(0.8)
    assert reg.loc["matched", "r2"] == pytest.approx(1.0)
    assert reg.loc["mismatched", "r2"] < 0.5


def test_missing_map_is_reported():
    design, maps, scores = _design_and_maps(n=2)
    del maps[("img1", "good1")]
    with pytest.raises(KeyError, match="good1"):
        AD.addibility_table(design, maps)
    with pytest.raises(ValueError, match="lacks columns"):
        AD.addibility_table(design.drop(columns="group"), maps)


def test_table_viii_with_too_few_pairs_reports_instead_of_failing():
    design, maps, _ = _design_and_maps()
    scores = AD.addibility_table(design, maps)
    first = scores.iloc[0]
    one_image = scores[(scores["image_id"] == first["image_id"]) & (scores["phrase_type"] == first["phrase_type"])]
    t8 = AD.table_viii(one_image)  # one image and phrase type: 1 pair per method
    assert t8[("p vs add", "")].isna().all()
    assert (t8[("n pairs", "")] <= 1).all()
    notes = AD.method_ttests(one_image)
    assert notes.loc[notes.method == "multiply", "note"].str.contains("fewer than 2").all()
