"""analysis.pipeline on synthetic shards written in gradeclip.batch's formats (npz image maps, CSV word rows)."""

import csv
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import concreteness as C
from analysis import pipeline as P
from analysis.attributes import HIGHER_IS_BETTER
from analysis.tables import write_table
from gradeclip.batch import TEXT_COLUMNS, read_image_maps

H, W = 24, 32


def write_map_shard(path, rows):
    """rows: (image_id, text, grid, score, model_score); registration = the whole image of H×W (grid maps
    of the image's own size are put on the pixels unchanged)."""
    grids = [np.asarray(g, dtype=np.float32) for _, _, g, _, _ in rows]
    np.savez(path,
             image_id=np.array([r[0] for r in rows], dtype=str), text=np.array([r[1] for r in rows], dtype=str),
             score=np.array([r[3] for r in rows], dtype=np.float32),
             model_score=np.array([r[4] for r in rows], dtype=np.float32),
             grid_shape=np.array([g.shape for g in grids], dtype=np.int32).reshape(-1, 2),
             grid_offset=np.concatenate([[0], np.cumsum([g.size for g in grids])]).astype(np.int64),
             grid_values=np.concatenate([g.ravel() for g in grids]) if grids else np.zeros(0, np.float32),
             box=np.array([[0, 0, W, H]] * len(rows), dtype=np.float64).reshape(-1, 4),
             image_size=np.array([[W, H]] * len(rows), dtype=np.int64).reshape(-1, 2))
    return path


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


OBJ0, OBJ1 = box(4, 12, 3, 12), box(14, 22, 18, 30)
INSTANCE = (OBJ0 * 1 + OBJ1 * 2).astype(np.uint8)


def test_synthetic_shard_reads_back_through_gradeclip(tmp_path):
    path = write_map_shard(tmp_path / "s.npz", [("a", "red", OBJ0 * 1.0, 0.3, 0.31)])
    (m,) = read_image_maps(path)
    np.testing.assert_array_equal(P.pixel_map(m), OBJ0 * 1.0)  # identity registration


# ------------------------------------------------------------------------------------------- §V-B
@pytest.fixture()
def attribute_setup(tmp_path):
    yy, xx = np.mgrid[0:H, 0:W]
    concentrated = OBJ0 + 0.05 * np.exp(-((yy - 8) ** 2 + (xx - 7) ** 2) / 20.0)
    diffuse = np.ones((H, W)) + 0.01 * box(0, 2, 28, 32)  # flat, its maximum in the background corner
    design = pd.DataFrame([
        {"image_id": "img1", "category": "color", "text": "red", "object_id": 0, "variant": ""},
        {"image_id": "img1", "category": "shape", "text": "cube", "object_id": 0, "variant": ""},
        {"image_id": "img1", "category": "material", "text": "metal", "object_id": 1, "variant": ""},
        {"image_id": "img1", "category": "location", "text": "left cube", "object_id": 0,
         "variant": "location+shape"},
        {"image_id": "img1", "category": "location_ablation", "text": "left", "object_id": 0, "variant": "location"},
        {"image_id": "img2", "category": "color", "text": "red", "object_id": 0, "variant": ""},
        {"image_id": "img2", "category": "location", "text": "left cube", "object_id": 0,
         "variant": "location+shape"},
        {"image_id": "img2", "category": "location_ablation", "text": "left", "object_id": 0, "variant": "location"},
        {"image_id": "img2", "category": "location_ablation", "text": "cube", "object_id": 0, "variant": "shape"},
        {"image_id": "img3", "category": "color", "text": "blue", "object_id": 1, "variant": ""},  # never explained
    ])
    design_ablation_img1 = {"image_id": "img1", "category": "location_ablation", "text": "cube", "object_id": 0,
                            "variant": "shape"}
    design = pd.concat([design, pd.DataFrame([design_ablation_img1])], ignore_index=True)
    s1 = write_map_shard(tmp_path / "maps_0.npz", [
        ("img1", "red", OBJ0 * 1.0, 0.30, 0.31), ("img1", "cube", concentrated, 0.2, 0.21),
        ("img1", "metal", diffuse, 0.1, 0.11), ("img1", "left cube", concentrated, 0.2, 0.2),
        ("img1", "left", diffuse, 0.1, 0.1)])
    s2 = write_map_shard(tmp_path / "maps_1.npz", [
        ("img2", "red", concentrated, 0.3, 0.3), ("img2", "left cube", concentrated * 0.5 + 0.01, 0.2, 0.2),
        ("img2", "left", diffuse, 0.1, 0.1), ("img2", "cube", concentrated, 0.2, 0.2),
        ("img2", "unrelated text", diffuse, 0.0, 0.0)])
    mask_dir = tmp_path / "masks"
    mask_dir.mkdir()
    for i in ("img1", "img2", "img3"):
        Image.fromarray(INSTANCE).save(mask_dir / f"{i}.png")
    images = pd.DataFrame({"image_id": ["img1", "img2", "img3"],
                           "mask_path": [str(mask_dir / f"{i}.png") for i in ("img1", "img2", "img3")]})
    write_table(images, tmp_path / "images.tsv")
    write_table(design, tmp_path / "attributes.tsv")
    return tmp_path, design, (s1, s2), (concentrated, diffuse)


def test_map_equal_to_mask_is_perfect_and_concentrated_beats_diffuse(attribute_setup):
    tmp, design, (s1, _), _ = attribute_setup
    everything = P.attribute_shard_metrics(s1, tmp / "attributes.tsv", tmp / "images.tsv", ot_grid=8)
    # 6 texts; the 4 of the Table IX categories also get their chance levels (uniform, wrong object)
    assert len(everything) == 6 + 2 * 4 and set(everything["map"]) == {"explanation", "uniform", "wrong object"}
    m = everything[everything["map"] == "explanation"]
    assert set(m["image_id"]) == {"img1"} and len(m) == 6 and (m["status"] == "ok").all()
    red = m.set_index("text").loc["red"]
    assert red["cosine"] == pytest.approx(1.0) and red["js"] == pytest.approx(0.0, abs=1e-9)
    assert red["ot"] == pytest.approx(0.0, abs=1e-9) and red["pointing"] == 1.0
    assert red["model_score"] == pytest.approx(0.31) and red["score"] == pytest.approx(0.30)
    # same object (0): concentrated "cube" vs diffuse "left" — better on every metric
    by = m.set_index(["category", "text"])
    good, bad = by.loc[("shape", "cube")], by.loc[("location_ablation", "left")]
    for metric, higher in HIGHER_IS_BETTER.items():
        assert (good[metric] > bad[metric]) if higher else (good[metric] < bad[metric]), metric


def test_masks_lookup_forms_agree(attribute_setup):
    tmp, design, (s1, _), _ = attribute_setup
    a = P.attribute_shard_metrics(s1, design, tmp / "images.tsv", ot_grid=8)
    b = P.attribute_shard_metrics(s1, design, {"img1": INSTANCE}, ot_grid=8)
    c = P.attribute_shard_metrics(s1, design, lambda i: INSTANCE, ot_grid=8)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_missing_map_of_a_shard_image_raises(attribute_setup):
    tmp, design, (s1, _), _ = attribute_setup
    extra = pd.concat([design, pd.DataFrame([{"image_id": "img1", "category": "size", "text": "small cube",
                                              "object_id": 0, "variant": ""}])], ignore_index=True)
    with pytest.raises(KeyError, match="small cube"):
        P.attribute_shard_metrics(s1, extra, {"img1": INSTANCE})


def test_hidden_object_is_flagged_not_dropped(attribute_setup):
    tmp, design, (s1, _), _ = attribute_setup
    only_obj0 = OBJ0.astype(np.uint8)  # object 1 has no pixels
    m = P.attribute_shard_metrics(s1, design, {"img1": only_obj0}, ot_grid=8)
    metal = m.set_index("text").loc["metal"]
    assert metal["status"] == "no mask pixels" and math.isnan(metal["cosine"])


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # two near-identical pairs in the t-tests
def test_attribute_summary_tables(attribute_setup):
    tmp, design, (s1, s2), _ = attribute_setup
    paths = []
    for k, s in enumerate((s1, s2)):
        paths.append(tmp / f"metrics_{k}.csv")
        P.attribute_shard_metrics(s, tmp / "attributes.tsv", tmp / "images.tsv", ot_grid=8, out=paths[-1])
    with pytest.warns(RuntimeWarning, match="no metrics"):
        summary = P.attribute_summary(paths, design_attributes=tmp / "attributes.tsv")
    t9 = summary.table_ix.set_index("metric")
    assert list(t9.columns) == ["Color", "Shape", "Material", "Location"]
    assert t9.loc["n texts", "Color"] == 2 and t9.loc["n texts", "Location"] == 2  # ablation rows not in Table IX
    assert t9.loc["Cosine similarity", "Color"] > t9.loc["Cosine similarity", "Material"]
    ab = summary.location_ablation.set_index("metric")
    assert list(ab.columns) == ["shape", "location+shape", "location"] and (ab.loc["n objects"] == 2).all()
    assert ab.loc["Cosine similarity", "shape"] > ab.loc["Cosine similarity", "location"]
    assert set(summary.location_tests["variant"]) == {"location+shape", "location"}
    for key, table in summary.tables().items():  # no pandas index, no repeated row, in any table
        assert isinstance(table.index, pd.RangeIndex) and not table.duplicated().any(), key
    cov = summary.coverage.set_index("category")
    assert cov.loc["color", "designed"] == 3 and cov.loc["color", "missing"] == 1  # img3 has no maps
    pg = summary.pointing_game.set_index("category")
    assert pg.loc["color", "rate"] == 1.0 and pg.loc["material", "rate"] == 0.0
    stats = summary.category_stats.set_index(["category", "metric"])
    assert stats.loc[("color", "cosine"), "n"] == 2
    assert stats.loc[("color", "cosine"), "ci_low"] <= stats.loc[("color", "cosine"), "mean"]
    assert set(summary.tables()) >= {"table_ix", "location_ablation", "pointing_game"}
    with pytest.raises(ValueError, match="twice"):
        P.attribute_summary([paths[0], paths[0]])
    # a shard without images (more shards than images) gives an empty table that aggregates fine
    empty = P.attribute_shard_metrics(write_map_shard(tmp / "none.npz", []), design, {}, out=tmp / "none.csv")
    assert empty.empty and "cosine" in empty.columns
    with pytest.warns(RuntimeWarning):
        again = P.attribute_summary(paths + [tmp / "none.csv"], design_attributes=design)
    pd.testing.assert_frame_equal(again.table_ix, summary.table_ix)


# ------------------------------------------------------------------------------------------- §V-A
def _blob(cy, cx, s=3.0):
    yy, xx = np.mgrid[0:H, 0:W]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))


def addibility_shards(tmp_path, n_images=6):
    rng = np.random.default_rng(0)
    rows, design = [], []
    for i in range(n_images):
        img = f"im{i}"
        base, adj, bad = _blob(8, 8 + i), _blob(16, 20), _blob(4, 28)
        s_base = 0.25 + 0.01 * i
        s_adj, s_bad = s_base + rng.uniform(-0.03, 0.03), s_base - 0.05 + 0.005 * i
        rows += [(img, "horse", base, s_base, s_base), (img, "young", adj, s_adj, s_adj),
                 (img, "white", bad, s_bad, s_bad),
                 (img, "young horse", base + adj, 0, s_base + 0.5 * (s_adj - s_base) + 0.01),
                 (img, "white horse", base + bad + 0.1 * rng.random((H, W)), 0, s_base - 0.01 - 0.001 * i)]
        design.append({"image_id": img, "group": "adj+noun", "base": "horse", "matched": "young",
                       "mismatched": "white", "matched_phrase": "young horse", "mismatched_phrase": "white horse"})
    half = 5 * (n_images // 2)
    s1 = write_map_shard(tmp_path / "a0.npz", rows[:half])
    s2 = write_map_shard(tmp_path / "a1.npz", rows[half:])
    return (s1, s2), pd.DataFrame(design)


def test_addibility_summary_add_maps_reproduce_the_phrase(tmp_path):
    shards, design = addibility_shards(tmp_path)
    write_table(design, tmp_path / "addibility.tsv")
    s = P.addibility_summary(shards, tmp_path / "addibility.tsv")
    t8 = s.table_viii.set_index("method")
    assert t8.loc["add", "matched | adj+noun"] == pytest.approx(1.0)
    assert t8.loc["add", "matched | adj+noun"] > t8.loc["multiply", "matched | adj+noun"]
    assert t8.loc["add", "matched | adj+noun"] > t8.loc["maximum", "matched | adj+noun"]
    tests = s.tests.set_index("method")
    assert tests.loc["multiply", "p"] < 0.05 and tests.loc["multiply", "n"] == 6  # images
    assert set(s.tables()) >= {"fig14_score_tests", "fig14_r2_difference", "addibility_tests"}
    assert set(s.regressions["scale"]) == {"ratio", "difference"}
    pts = s.points
    assert len(pts) == 6 * 5
    base = pts[pts["kind"] == "base word"]
    assert (base["rel_score"] == 1).all() and np.allclose(base["map_similarity"], 1.0)
    assert set(s.regressions["phrase_type"]) == {"matched", "mismatched"}
    assert s.coverage.iloc[0][["designed", "measured", "missing"]].tolist() == [6, 6, 0]
    # grid and pixel resolutions agree here (identity registration)
    g = P.addibility_summary(shards, design, resolution="grid")
    pd.testing.assert_frame_equal(g.scores, s.scores)
    # a design image without maps is reported (or raises when strict)
    more = pd.concat([design, design.iloc[[0]].assign(image_id="gone")], ignore_index=True)
    with pytest.warns(RuntimeWarning, match="no maps"):
        cov = P.addibility_summary(shards, more).coverage
    assert cov.iloc[0]["missing"] == 1
    with pytest.raises(KeyError):
        P.addibility_summary(shards, more, strict=True)


# ------------------------------------------------------------------------------------------- §V-C
def write_word_shard(path, captions):
    """captions: (caption_id, image_id, [(word, is_word, importance), ...])."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TEXT_COLUMNS)
        for cid, img, words in captions:
            text = " ".join(x for x, _, _ in words)
            for k, (word, is_word, imp) in enumerate(words):
                w.writerow([cid, img, text, k, word, int(is_word), imp, 0.3, 0.3])
    return path


def _random_captions(rng, start, n):
    vocab = ["a", "dog", "red", "cube", "left", "the", "sphere", "Metal", "idea", "of"]
    out = []
    for c in range(start, start + n):
        words = [(vocab[int(rng.integers(len(vocab)))], True, float(rng.random())) for _ in range(rng.integers(2, 7))]
        words.append((".", False, 5.0))  # punctuation with a large importance: must not set the maximum
        out.append((f"c{c}", f"i{c // 3}", words))
    return out


def _plain_word_table(df: pd.DataFrame) -> pd.DataFrame:
    """The word table written directly with pandas (means and SDs over all rows at once, NaN skipped): what the
    summed partials must reproduce."""
    peak = df.groupby("sentence_id")["importance"].transform("max")
    norm = df.assign(importance_norm=df["importance"] / peak.where(peak > 0), word_clean=df["word"].map(C.clean_word))
    norm = norm[norm["word_clean"] != ""]
    stats = norm.groupby("word_clean").agg(count=("importance_norm", "size"), n_sentences=("sentence_id", "nunique"),
                                           mean_importance=("importance_norm", "mean"),
                                           sd_importance=("importance_norm", "std"))
    stats = stats.reset_index().rename(columns={"word_clean": "word"})
    stats = stats.sort_values(["count", "word"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    stats["rank"] = np.arange(1, len(stats) + 1)
    return stats


def test_concreteness_over_shards_equals_over_concatenation(tmp_path):
    rng = np.random.default_rng(1)
    caps1, caps2 = _random_captions(rng, 0, 25), _random_captions(rng, 25, 30)
    caps2[0][2][0] = ("zero", True, 0.0)
    caps2[1] = ("c26", "i9", [("a", True, 0.0), ("dog", True, 0.0)])  # no positive importance: NaN, counted
    s1 = write_word_shard(tmp_path / "w0.csv", caps1)
    s2 = write_word_shard(tmp_path / "w1.csv", caps2)
    split = P.concreteness_words([s1, s2], top_n=None)
    both = pd.concat([P.read_word_shard(s1), P.read_word_shard(s2)], ignore_index=True)
    whole = C.word_importance_table(both, top_n=None)
    pd.testing.assert_frame_equal(split.reset_index(drop=True), whole.reset_index(drop=True), check_dtype=False,
                                  rtol=1e-9, atol=1e-12)
    # both go through one code path (sums per shard); a plain groupby over all rows is the independent reference
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), _plain_word_table(both), check_dtype=False,
                                  rtol=1e-9, atol=1e-12)
    assert "." not in set(split["word"]) and split["mean_importance"].max() <= 1.0
    top = P.concreteness_words([s1, s2], top_n=3, exclude=["a"])
    assert len(top) == 3 and "a" not in set(top["word"])
    with pytest.raises(ValueError, match="already seen"):
        P.concreteness_words([s1, s1])


def test_a_text_shard_without_captions_adds_nothing(tmp_path):
    """A shard whose images have no captions is a header-only CSV (explain_text_jobs of no jobs): it reads with the
    declared dtypes and combines with the others to the same table (it once made combine_word_partials raise a
    TypeError at the square root)."""
    from gradeclip.batch import explain_text_jobs

    empty = tmp_path / "w_empty.csv"
    assert explain_text_jobs(None, [], empty) == 0
    words = P.read_word_shard(empty)
    assert words.empty and words["importance"].dtype == np.float64 and words["word_index"].dtype == np.int64
    partial = C.word_importance_partial(words)
    assert partial.empty and partial["sum"].dtype == np.float64 and partial["count"].dtype == np.int64
    full = write_word_shard(tmp_path / "w0.csv", _random_captions(np.random.default_rng(3), 0, 12))
    pd.testing.assert_frame_equal(P.concreteness_words([empty, full, empty], top_n=None),
                                  P.concreteness_words([full], top_n=None))
    with pytest.raises(ValueError, match="no captions in any of the 2"):
        P.concreteness_words([empty, empty])


def test_concreteness_summary_with_given_ratings(tmp_path):
    rng = np.random.default_rng(2)
    ratings = {"a": 1.5, "dog": 4.9, "red": 4.0, "cube": 4.8, "left": 2.5, "the": 1.4, "sphere": 4.6,
               "metal": 4.7, "idea": 1.6, "of": 1.3}
    caps = []
    for c in range(60):  # importance rises with concreteness, plus noise
        words = [(w, True, ratings[w.lower()] / 5 + 0.1 * rng.random()) for w in
                 rng.choice(list(ratings), size=5)]
        caps.append((f"c{c}", "i", words))
    shards = [write_word_shard(tmp_path / "x0.csv", caps[:30]), write_word_shard(tmp_path / "x1.csv", caps[30:])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = P.concreteness_summary(shards, top_n=10, ratings=ratings, lemma_fallback=False)
    assert study.concreteness_fit["slope"] > 0 and study.concreteness_fit["slope_p"] < 0.01
    assert study.missing.empty and len(study.words) == 10
    tables = P.concreteness_tables(study)
    assert set(tables) >= {"concreteness_regressions", "concreteness_controlled", "concreteness_words"}
    assert tables["concreteness_regressions"]["model"].tolist() == ["Fig. 18", "Fig. 17"]


def test_top_bottom_never_repeats_a_word():
    ranked = pd.DataFrame({"word": [f"w{i}" for i in range(17)], "mean_importance": np.linspace(1, 0, 17)})
    small = P.top_bottom(ranked, 15)
    assert len(small) == 17 and small["word"].is_unique  # 17 words: each once, not 30 rows with 13 repeats
    assert (small["end"] == "most important").sum() == 9
    big = P.top_bottom(pd.concat([ranked] * 3, ignore_index=True).assign(word=lambda d: [f"v{i}" for i in
                                                                                          range(len(d))]), 15)
    assert len(big) == 30 and big["word"].is_unique
    assert big["word"].iloc[-1] == "v50" and big["word"].iloc[0] == "v0"
