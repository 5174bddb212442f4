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


def test_empty_input_map_leaves_every_method_out_but_an_empty_product_scores_zero():
    rng = np.random.default_rng(3)
    a, b = _word_maps(rng)
    s = AD.addibility_scores(np.zeros_like(a), b, a + b)  # a word map with no contrast: nothing to combine
    assert all(math.isnan(v) for v in s.values())
    # disjoint supports after normalisation: the product is all zero, the method's own (wrong) prediction
    left, right = np.zeros((4, 4)), np.zeros((4, 4))
    left[:, :2], right[:, 2:] = 1.0, 1.0
    s = AD.addibility_scores(left, right, left + 0.5 * right)
    assert s["multiply"] == 0.0 and s["add"] == pytest.approx(1 / math.sqrt(2))  # phrase normalises to left


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
    assert set(long.columns) == {"image_id", "group", "phrase_type", "phrase", "method", "cosine", "empty"}
    t8 = AD.table_viii(long)
    assert isinstance(t8.index, pd.RangeIndex) and list(t8["method"]) == ["add", "multiply", "maximum"]
    t8 = t8.set_index("method")
    cells = t8[[f"{p} | {g}" for p in AD.PHRASE_TYPES for g in AD.GROUPS]]
    assert (cells.loc["add"] > cells.loc["multiply"]).all()
    assert (cells.loc["add"] > 0.95).all()
    assert (t8["n images"] == 12).all() and (t8["empty (left out)"] == 0).all()


def test_method_tests_take_the_image_as_the_unit():
    design, maps, _ = _design_and_maps()
    long = AD.addibility_table(design, maps)
    tests = AD.method_tests(long).set_index("method")
    assert tests.loc["multiply", "n"] == 12  # images, not image x phrase-type pairs
    # by hand: average the two phrase types within each image, then scipy's paired t-test over images
    per_image = long.groupby(["image_id", "method"])["cosine"].mean().unstack()
    ref = sps.ttest_rel(per_image["add"], per_image["maximum"])
    assert tests.loc["maximum", "p"] == pytest.approx(ref.pvalue) and tests.loc["maximum", "t"] == pytest.approx(
        ref.statistic)
    assert tests.loc["multiply", "mean_diff"] > 0 and tests.loc["multiply", "p"] < 1e-3  # add is better
    np.testing.assert_allclose(tests["p_holm"], [min(1, 2 * p) if p == tests["p"].min() else
                                                 max(p, 2 * tests["p"].min()) for p in tests["p"]])
    by = AD.method_tests(long, by=("group", "phrase_type"))
    assert len(by) == 4 * 2 and set(by["n"]) == {6}


def test_an_empty_map_removes_the_case_from_every_method():
    design, maps, _ = _design_and_maps()
    maps[("img3", design.loc[3, "matched_phrase"])] = np.zeros((14, 14))
    long = AD.addibility_table(design, maps)
    t8 = AD.table_viii(long).set_index("method")
    assert (t8["empty (left out)"] == 1).all()
    per_image = AD.per_image_cosines(long)
    # img3 keeps its mismatched phrase type, the same value set for every method
    assert per_image.loc["img3"].notna().all()
    expected = long[(long.image_id == "img3") & (long.phrase_type == "mismatched")].set_index("method")["cosine"]
    pd.testing.assert_series_equal(per_image.loc["img3"].sort_index(), expected.sort_index(), check_names=False)


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
    reg = AD.fig14_regressions(pts).set_index(["scale", "phrase_type"])
    # matched phrase score was built as base + 0.8 (matched - base) + 0.01 base: on the ratio scale slope 0.8, R² = 1
    assert reg.loc[("ratio", "matched"), "slope"] == pytest.approx(0.8)
    assert reg.loc[("ratio", "matched"), "r2"] == pytest.approx(1.0)
    assert reg.loc[("ratio", "mismatched"), "r2"] < 0.5
    # on the difference scale the same slope, and the differences are the scores minus the base score
    assert reg.loc[("difference", "matched"), "slope"] == pytest.approx(0.8, abs=0.05)
    diff = AD.fig14_pairs(pts, "difference").set_index(["image_id", "phrase_type"])
    img = design.iloc[0]
    assert diff.loc[(img.image_id, "matched"), "phrase_rel_score"] == pytest.approx(
        scores[(img.image_id, img.matched_phrase)] - scores[(img.image_id, img.base)])


def test_a_noisy_base_score_correlates_the_axes_by_construction():
    """Word and phrase scores independent of each other: a noisy base score alone makes the phrase's relative score
    follow the word's on both scales (both axes share it); with a fixed base score the fit has nothing to find."""
    rng = np.random.default_rng(11)

    def points(base_sd):
        rows = []
        for i in range(200):
            base = 0.25 + rng.normal(0, base_sd)
            word, phrase = rng.normal(0.25, 0.01), rng.normal(0.25, 0.01)
            for kind, s in (("base word", base), ("matched word", word), ("matched phrase", phrase),
                            ("mismatched word", word), ("mismatched phrase", phrase)):
                rows.append({"image_id": f"i{i}", "group": "adj+noun", "kind": kind, "score": s,
                             "rel_score": s / base, "diff_score": s - base, "map_similarity": 1.0})
        return pd.DataFrame(rows)

    noisy = AD.fig14_regressions(points(0.05)).set_index(["scale", "phrase_type"])
    assert noisy.loc[("ratio", "matched"), "r2"] > 0.8 and noisy.loc[("difference", "matched"), "r2"] > 0.8
    fixed = AD.fig14_regressions(points(0.0)).set_index(["scale", "phrase_type"])
    assert fixed.loc[("ratio", "matched"), "r2"] < 0.05 and fixed.loc[("difference", "matched"), "r2"] < 0.05


def test_r2_difference_and_score_claims():
    design, maps, scores = _design_and_maps(n=40)
    pts = AD.fig14_points(design, maps, scores)
    r2 = AD.r2_difference(pts, n_boot=300).set_index("scale")
    reg = AD.fig14_regressions(pts).set_index(["scale", "phrase_type"])
    assert r2.loc["ratio", "r2_diff"] == pytest.approx(reg.loc[("ratio", "matched"), "r2"]
                                                       - reg.loc[("ratio", "mismatched"), "r2"])
    assert r2.loc["ratio", "r2_diff_ci_low"] > 0  # matched fit far stronger in this synthetic study
    claims = AD.score_claim_tests(pts).set_index("kind")
    # built in: mismatched word below base (positive in the paper's direction), matched phrase ~ base + 0.8 (m - b)
    assert claims.loc["mismatched word", "mean_diff"] > 0 and claims.loc["mismatched word", "p"] < 1e-6
    wide = pts.pivot_table(index="image_id", columns="kind", values="score")
    ref = sps.ttest_1samp(wide["base word"] - wide["mismatched word"], 0.0)
    assert claims.loc["mismatched word", "p"] == pytest.approx(ref.pvalue)
    assert claims.loc["mismatched word", "n"] == 40
    sims = AD.map_similarity_summary(pts).set_index("kind")
    assert sims.loc["matched phrase", "ci_low"] < sims.loc["matched phrase", "mean"] < 1


def test_missing_map_is_reported():
    design, maps, scores = _design_and_maps(n=2)
    del maps[("img1", "good1")]
    with pytest.raises(KeyError, match="good1"):
        AD.addibility_table(design, maps)
    with pytest.raises(ValueError, match="lacks columns"):
        AD.addibility_table(design.drop(columns="group"), maps)


def test_tests_with_too_few_images_report_instead_of_failing():
    design, maps, _ = _design_and_maps()
    scores = AD.addibility_table(design, maps)
    one_image = scores[scores["image_id"] == scores.iloc[0]["image_id"]]
    assert (AD.table_viii(one_image)["n images"] == 1).all()
    notes = AD.method_tests(one_image)
    assert notes["p"].isna().all() and notes["note"].str.contains("at least 2").all()
