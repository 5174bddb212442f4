"""analysis.attributes: map-vs-mask metrics on known answers, and the Table IX / Appendix B layouts."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis import attributes as A

H, W = 24, 36


def box(y0, y1, x0, x1, shape=(H, W)):
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


OBJ = box(4, 10, 4, 12)  # the named object
OTHER = box(14, 20, 22, 32)  # another object, disjoint


def metrics(heatmap, mask=OBJ, others=(OTHER,), **kw):
    return A.map_mask_metrics(heatmap, mask, list(others), ot_grid=12, **kw)


def test_map_equal_to_mask_is_perfect():
    m = metrics(OBJ.astype(float))
    assert m["cosine"] == pytest.approx(1.0)
    assert m["pearson"] == pytest.approx(1.0)
    assert m["ot"] == pytest.approx(0.0, abs=1e-12)
    assert m["kl"] == pytest.approx(0.0, abs=1e-12)
    assert m["js"] == pytest.approx(0.0, abs=1e-12)
    assert m["pointing"] == 1.0 and m["mass_in_mask"] == pytest.approx(1.0) and m["energy_share"] == 1.0


def test_scaled_map_gives_same_metrics():
    a, b = metrics(OBJ * 1.0), metrics(OBJ * 37.5)
    for k in ("cosine", "pearson", "ot", "kl", "js", "pointing", "mass_in_mask", "energy_share"):
        assert a[k] == pytest.approx(b[k])


def test_map_disjoint_from_mask_is_worst():
    m = metrics(OTHER.astype(float))
    assert m["cosine"] == pytest.approx(0.0, abs=1e-12)
    assert m["js"] == pytest.approx(math.log(2))  # natural log: ln 2 for disjoint supports
    assert A.js_divergence(OTHER, OBJ, base=2) == pytest.approx(1.0)
    assert m["ot"] > 0.3  # the boxes' centres are ~0.5 image diagonals apart
    assert m["kl"] > 10  # only the eps smoothing keeps it finite
    assert m["pointing"] == 0.0 and m["mass_in_mask"] == 0.0 and m["energy_share"] == 0.0


def test_uniform_map_is_in_between():
    good, bad, uni = metrics(OBJ * 1.0), metrics(OTHER * 1.0), metrics(np.ones((H, W)))
    for k in ("cosine", "ot", "kl", "js", "mass_in_mask", "energy_share"):
        lo, hi = sorted((good[k], bad[k]))
        assert lo < uni[k] < hi, k
    # a constant map as an explanation: no association, and it has no maximum to point with (a miss)
    assert uni["pearson"] == 0.0 and uni["pointing"] == 0.0
    assert uni["mass_in_mask"] == pytest.approx(OBJ.mean())
    assert uni["kl"] == pytest.approx(math.log(OBJ.size / OBJ.sum()), rel=1e-4)  # KL(mask ‖ uniform)
    # as the chance level, its pointing game is the expected hit of a random pixel: the mask's area fraction
    chance = A.uniform_map_metrics(OBJ, [OTHER], ot_grid=12)
    assert chance["pointing"] == pytest.approx(OBJ.mean())
    assert {k: chance[k] for k in ("cosine", "ot", "kl", "js")} == {k: uni[k] for k in ("cosine", "ot", "kl", "js")}
    assert chance["energy_share"] == pytest.approx(OBJ.sum() / (OBJ.sum() + OTHER.sum()))


def test_concentrated_map_beats_uniform_on_every_metric():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    blob = np.exp(-((yy - 7) ** 2 + (xx - 8) ** 2) / 8.0) + 0.01 * rng.random((H, W))
    conc = metrics(blob)
    uni = metrics(np.ones((H, W)) + 1e-3 * rng.random((H, W)))  # near-uniform so Pearson is defined
    for k, higher in A.HIGHER_IS_BETTER.items():
        assert (conc[k] > uni[k]) if higher else (conc[k] < uni[k]), k


def test_js_symmetric_kl_asymmetric():
    rng = np.random.default_rng(1)
    p, q = rng.random((6, 6)), rng.random((6, 6)) ** 4
    assert A.js_divergence(p, q) == pytest.approx(A.js_divergence(q, p))
    assert A.kl_divergence(p, q) != pytest.approx(A.kl_divergence(q, p), rel=1e-3)
    assert A.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert 0 <= A.js_divergence(p, q) <= math.log(2)


def test_kl_eps_controls_the_disjoint_penalty():
    # KL(q ‖ p) for disjoint supports ≈ log(n / (area · eps)) grows as eps shrinks
    k1 = A.kl_divergence(OBJ, OTHER, eps=1e-3)
    k2 = A.kl_divergence(OBJ, OTHER, eps=1e-9)
    assert k2 - k1 == pytest.approx(math.log(1e6), rel=1e-2)
    # map_mask_metrics carries the sensitivity columns beside the default
    m = metrics(OTHER * 1.0)
    assert m["kl_eps1e-09"] - m["kl_eps1e-03"] == pytest.approx(math.log(1e6), rel=1e-2)
    assert m["kl_eps1e-03"] < m["kl"] < m["kl_eps1e-09"]
    assert A.kl_column(1e-6) == "kl" and A.kl_column(1e-3) == "kl_eps1e-03"


def test_ot_invariances():
    heat = box(2, 6, 3, 9).astype(float)
    mask = box(8, 12, 20, 26)
    d = A.ot_distance(heat, mask, grid=12)
    # translation of both by the same offset (away from the border) leaves the distance unchanged
    assert A.ot_distance(np.roll(heat, (3, 2), axis=(0, 1)), np.roll(mask, (3, 2), axis=(0, 1)), grid=12) \
        == pytest.approx(d, rel=1e-9)
    # a mirror of both, and swapping the roles (symmetric metric)
    assert A.ot_distance(heat[:, ::-1], mask[:, ::-1], grid=12) == pytest.approx(d, rel=1e-9)
    assert A.ot_distance(mask.astype(float), heat > 0, grid=12) == pytest.approx(d, rel=1e-9)
    # scale of the map does not matter; distance grows when the mass moves further away
    assert A.ot_distance(heat * 9.0, mask, grid=12) == pytest.approx(d, rel=1e-12)
    assert A.ot_distance(box(18, 22, 30, 36).astype(float), box(0, 4, 0, 6), grid=12) > d


def test_ot_known_answer_point_masses():
    # two single cells on a 12×12 image, one grid cell per pixel: distance = |Δ| / diagonal
    a = np.zeros((12, 12))
    a[0, 0] = 1
    b = np.zeros((12, 12), dtype=bool)
    b[3, 4] = True
    assert A.ot_distance(a, b, grid=12) == pytest.approx(5 / math.hypot(12, 12))


def test_area_resample_preserves_mass_and_handles_non_integer_factors():
    rng = np.random.default_rng(2)
    x = rng.random((30, 45))
    y = A.area_resample(x, (7, 11))
    assert y.shape == (7, 11) and y.sum() == pytest.approx(x.sum())
    assert A.area_resample(np.ones((4, 4)), (2, 2)) == pytest.approx(np.full((2, 2), 4.0))
    assert A.ot_grid_shape((320, 480), 32) == (21, 32)


def test_input_validation():
    with pytest.raises(ValueError):
        A.map_mask_metrics(-OBJ.astype(float), OBJ)
    with pytest.raises(ValueError):
        A.map_mask_metrics(np.ones((H, W)), np.zeros((H, W), bool))
    with pytest.raises(ValueError):
        A.cosine_similarity(np.ones((4, 4)), OBJ)



def test_empty_map_is_undefined_for_every_metric():
    """One policy: a map with no mass explains nothing, so no metric is defined for it (none treats it as uniform)."""
    empty = metrics(np.zeros((H, W)))
    assert empty["map_empty"]
    assert all(math.isnan(v) for k, v in empty.items() if k != "map_empty")
    for fn in (A.cosine_similarity, A.pearson_correlation, A.ot_distance, A.mass_in_mask, A.pointing_hit):
        assert math.isnan(fn(np.zeros((H, W)), OBJ)), fn.__name__
    assert math.isnan(A.energy_share(np.zeros((H, W)), OBJ, [OTHER]))
    with pytest.raises(ValueError, match="empty"):
        A.map_distribution(np.zeros((H, W)))
    # no mass on any object (but mass elsewhere): energy share 0, as in the toy CLIP's model card
    background = np.zeros((H, W))
    background[0, -1] = 1.0
    assert A.energy_share(background, OBJ, [OTHER]) == 0.0


def test_pointing_tolerance():
    heat = np.zeros((H, W))
    heat[4, 14] = 1.0  # 3 pixel centres right of the object's last column (columns 4..11)
    assert A.pointing_hit(heat, OBJ) == 0.0
    assert A.pointing_hit(heat, OBJ, tolerance=3) == 1.0
    assert A.pointing_hit(heat, OBJ, tolerance=2.9) == 0.0
    heat[5, 6] = 2.0  # a higher peak inside the object wins
    assert A.pointing_hit(heat, OBJ) == 1.0


def test_energy_share_relative_to_all_objects():
    heat = OBJ * 3.0 + OTHER * 1.0 + 0.5  # background mass is ignored by energy share
    share = A.energy_share(heat, OBJ, [OTHER])
    in_obj, in_other = (3.5 * OBJ.sum()), (1.5 * OTHER.sum())
    assert share == pytest.approx(in_obj / (in_obj + in_other))


def _toy_tables():
    objects = {0: OBJ, 1: OTHER}
    masks = {"img1": objects, "img2": objects}
    good, bad, uni = OBJ * 1.0, OTHER * 1.0, np.ones((H, W))
    rows = pd.DataFrame([
        ("img1", "color", "red", 0, good),
        ("img2", "color", "red", 0, good),
        ("img1", "shape", "sphere", 0, good * 0.5 + uni * 0.01),
        ("img2", "shape", "sphere", 0, good * 0.4 + uni * 0.02),
        ("img1", "location", "left sphere", 0, good * 0.5 + uni * 0.011),
        ("img2", "location", "left sphere", 0, good * 0.4 + uni * 0.021),
        ("img1", "location", "left", 0, bad + uni * 0.1),
        ("img2", "location", "left", 0, uni),
        ("img1", "size", "big", [0, 1], uni),
    ], columns=["image_id", "category", "text", "object_id", "map"])
    maps = {(r.image_id, r.text): r.map for r in rows.itertuples()}
    return rows.drop(columns="map"), maps, masks


def test_metrics_table_and_table_ix_layout():
    rows, maps, masks = _toy_tables()
    table = A.attribute_metrics_table(rows, maps, masks, ot_grid=12)
    assert len(table) == len(rows) and list(table.columns[:4]) == ["image_id", "category", "text", "object_id"]
    assert table.loc[table.text == "big", "target"].item() == "0,1"
    ix = A.table_ix(table)
    assert isinstance(ix.index, pd.RangeIndex) and ix.columns[0] == "metric"  # no pandas index leaks into the CSV
    ix = ix.set_index("metric")
    assert list(ix.columns) == ["Color", "Shape", "Size", "Location"]  # paper order, absent Material omitted
    assert list(ix.index) == ["Cosine similarity", "Correlation", "OTD", "KLD", "JSD", "n texts", "n images",
                              "empty maps (left out)"]
    assert ix.loc["Cosine similarity", "Color"] == pytest.approx(1.0)
    assert ix.loc["n texts", "Location"] == 4 and ix.loc["n images", "Location"] == 2
    assert ix.loc["Cosine similarity", "Color"] > ix.loc["Cosine similarity", "Location"]
    assert ix.loc["OTD", "Color"] < ix.loc["OTD", "Location"]


def test_table_ix_leaves_empty_maps_out_of_every_metric_and_counts_them():
    rows, maps, masks = _toy_tables()
    maps[("img2", "sphere")] = np.zeros((H, W))
    table = A.attribute_metrics_table(rows, maps, masks, ot_grid=12)
    ix = A.table_ix(table).set_index("metric")
    assert ix.loc["n texts", "Shape"] == 1 and ix.loc["empty maps (left out)", "Shape"] == 1
    one = table[(table.text == "sphere") & (table.image_id == "img1")].iloc[0]
    for m, label in (("cosine", "Cosine similarity"), ("pearson", "Correlation"), ("kl", "KLD")):
        assert ix.loc[label, "Shape"] == pytest.approx(one[m])  # the same single text for every metric


def _two_object_scene():
    """Two objects; each has a colour text whose map finds it, and a shape text whose map is poor."""
    objects = {0: OBJ, 1: OTHER}
    masks = {f"img{i}": objects for i in range(4)}
    rng = np.random.default_rng(3)
    rows, maps = [], {}
    for i in range(4):
        img = f"img{i}"
        for k, (mask, colour, shape) in enumerate(((OBJ, "red", "cube"), (OTHER, "blue", "sphere"))):
            rows += [(img, "color", colour, k), (img, "shape", shape, k)]
            maps[(img, colour)] = mask * 1.0 + 0.01 * rng.random((H, W))
            maps[(img, shape)] = np.ones((H, W)) + 0.5 * mask + 0.01 * rng.random((H, W))
    return pd.DataFrame(rows, columns=["image_id", "category", "text", "object_id"]), maps, masks


def test_baselines_uniform_and_wrong_object_maps():
    rows, maps, masks = _two_object_scene()
    table = A.attribute_metrics_table(rows, maps, masks, ot_grid=12, baselines=True)
    assert set(table["map"]) == set(A.MAP_KINDS) and len(table) == 3 * len(rows)
    red = table[(table.image_id == "img0") & (table.text == "red")].set_index("map")
    # the wrong-object map of "red" is the map of "blue" scored against the red object's mask
    blue_vs_red = A.map_mask_metrics(maps[("img0", "blue")], OBJ, [OTHER], ot_grid=12)
    assert red.loc["wrong object", "cosine"] == pytest.approx(blue_vs_red["cosine"])
    assert red.loc["wrong object", "n_maps"] == 1
    assert red.loc["uniform", "pointing"] == pytest.approx(OBJ.mean())
    assert red.loc["explanation", "cosine"] > red.loc["uniform", "cosine"] > red.loc["wrong object", "cosine"]
    chance = A.chance_table(table).set_index(["metric", "map"])
    assert chance.loc[("n texts", ""), "Color"] == 8 and chance.loc[("n images", ""), "Color"] == 4
    tests = A.chance_tests(table).set_index(["metric", "baseline", "category"])
    # positive difference = the explanation is better, for higher- and lower-is-better metrics alike
    for metric in ("cosine", "ot", "kl", "js"):
        assert tests.loc[(metric, "wrong object", "color"), "mean_diff"] > 0, metric
        assert tests.loc[(metric, "uniform", "color"), "baseline_wins"] == 0.0
    assert tests.loc[("cosine", "uniform", "color"), "n"] == 4  # images, not texts
    assert (tests["p_holm"] >= tests["p"]).all()


def test_wrong_object_needs_another_object_of_the_category():
    rows, maps, masks = _two_object_scene()
    rows = rows[~((rows.image_id == "img0") & (rows.text == "blue"))]
    table = A.attribute_metrics_table(rows, maps, masks, ot_grid=12, baselines=True)
    red = table[(table.image_id == "img0") & (table.text == "red")].set_index("map")
    assert red.loc["wrong object", "map_empty"] and red.loc["wrong object", "n_maps"] == 0
    cc = A.complete_cases(table)
    assert not ((cc.image_id == "img0") & (cc.text == "red")).any()  # out of every map kind's comparison
    chance = A.chance_table(table).set_index(["metric", "map"])
    assert chance.loc[("n texts", ""), "Color"] == 6
    assert chance.loc[("texts left out (an empty map, or no other object of the category)", ""), "Color"] == 1


def test_category_contrasts_mixed_model_orientation():
    rows, maps, masks = _two_object_scene()
    table = A.attribute_metrics_table(rows, maps, masks, ot_grid=12)
    res = A.category_contrasts(table, metrics_shown=("cosine", "js")).set_index(["metric", "contrast"])
    # colour maps find the object, shape maps barely do: colour is better on both metrics (js: lower is better)
    assert res.loc[("cosine", "color vs shape"), "estimate"] > 0
    assert res.loc[("js", "color vs shape"), "estimate"] > 0
    assert res.loc[("js", "color vs shape"), "ci_low"] < res.loc[("js", "color vs shape"), "ci_high"]
    assert res.loc[("cosine", "color vs shape"), "n_images_both"] == 4
    diff = table[table.category == "color"].groupby("image_id")["cosine"].mean() - \
        table[table.category == "shape"].groupby("image_id")["cosine"].mean()
    assert res.loc[("cosine", "color vs shape"), "estimate"] == pytest.approx(diff.mean(), rel=1e-4)


def test_kl_sensitivity_table():
    rows, maps, masks = _toy_tables()
    table = A.attribute_metrics_table(rows, maps, masks, ot_grid=12)
    sens = A.kl_sensitivity_table(table).set_index("divergence")
    assert list(sens.index) == ["KLD, eps = 1e-03", "KLD, eps = 1e-06 (Table IX)", "KLD, eps = 1e-09", "JSD (no eps)",
                                "n texts (non-empty maps)"]
    assert sens.loc["KLD, eps = 1e-06 (Table IX)", "Color"] == pytest.approx(
        A.table_ix(table).set_index("metric").loc["KLD", "Color"])


def test_table_upsamples_patch_maps_and_reports_missing_inputs():
    rows = pd.DataFrame({"image_id": ["i"], "category": ["color"], "text": ["red"], "object_id": [0]})
    patch = np.zeros((6, 9))  # 4×4-pixel patches
    patch[1:3, 1:3] = 1.0
    out = A.attribute_metrics_table(rows, {("i", "red"): patch}, {"i": {0: OBJ, 1: OTHER}}, ot_grid=12)
    assert out["pointing"].item() == 1.0 and out["mass_in_mask"].item() > 0.6
    with pytest.raises(KeyError, match="no explanation map"):
        A.attribute_metrics_table(rows, {}, {"i": {0: OBJ}})
    with pytest.raises(KeyError, match="no mask for object"):
        A.attribute_metrics_table(rows, {("i", "red"): patch}, {"i": {5: OBJ}})


def test_location_ablation():
    assert A.location_variant("sphere") == "shape"
    assert A.location_variant("the left sphere") == "location+shape"
    assert A.location_variant("Left") == "location"
    assert A.location_variant("red") is None
    rows, maps, masks = _toy_tables()
    table = A.attribute_metrics_table(rows, maps, masks, ot_grid=12)
    ab = A.location_ablation_table(table).set_index("metric")
    assert list(ab.columns) == ["shape", "location+shape", "location"]
    assert ab.loc["n objects"].tolist() == [2, 2, 2] and ab.loc["n images"].tolist() == [2, 2, 2]
    # adding "left" barely changes the map here, dropping the shape word ruins it
    assert ab.loc["Cosine similarity", "shape"] == pytest.approx(ab.loc["Cosine similarity", "location+shape"],
                                                                 abs=0.01)
    assert ab.loc["Cosine similarity", "location"] < 0.3
    tests = A.location_ablation_tests(table, margins={"cosine": 0.05})
    assert set(tests["variant"]) == {"location+shape", "location"} and (tests["n"] == 2).all()
    cos = tests[tests.metric == "cosine"].set_index("variant")
    assert cos.loc["location", "mean_diff"] < 0  # dropping the shape word makes the map worse
    assert cos.loc["location+shape", "margin"] == 0.05 and "p_tost" in cos
    assert math.isnan(tests[tests.metric == "ot"]["margin"].iloc[0])  # no margin given: no equivalence claim
    assert (tests["p_holm"] >= tests["p"]).all()


def test_pointing_game_table_wilson():
    rows, maps, masks = _toy_tables()
    table = A.attribute_metrics_table(rows, maps, masks, ot_grid=12)
    pg = A.pointing_game_table(table).set_index("category")
    assert pg.loc["color", "rate"] == 1.0 and pg.loc["color", "n"] == 2
    assert pg.loc["color", "ci_low"] < 1.0  # Wilson interval is not degenerate at 2/2
    assert pg.loc["size", "rate"] == 0.0  # a constant map has no maximum to point with: a miss


def test_analysis_does_not_import_torch():
    code = ("import sys, numpy as np; import analysis.attributes as A, analysis.addibility, "
            "analysis.concreteness, analysis.stats, analysis.figures; "
            "A.ot_distance(np.ones((4, 4)), np.eye(4, dtype=bool), grid=4); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
