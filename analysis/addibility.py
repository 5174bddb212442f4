"""§V-A: concept decomposition and addibility (Table VIII, Fig. 14).

Design of the experiment (one row per image, the paper's 60 COCO images): a base word ("horse"), a matched
word ("young"), a mismatched word ("white"), and the two phrases built from them ("young horse", "white
horse"); ``group`` says whether the words are ``adj+noun`` or ``verb+noun``.

Normalisation — the one used throughout this module: every map (word maps *and* phrase map) is min-max
normalised to [0, 1], ``(m - m.min()) / (m.max() - m.min())``; a constant map becomes all zeros. The
combinations are then ``add`` (a + b), ``multiply`` (a · b) and ``maximum`` (max(a, b)) of the two normalised
word maps, and the addibility score is the cosine similarity between the normalised phrase map and the
combination (cosine is scale-free, so "add" needs no further rescaling).

Empty maps (the rule of ``analysis.attributes.EMPTY_MAP_POLICY``): an explanation map with no contrast (all zero
after the ReLU, or constant) explains nothing, so an (image, phrase type) whose phrase map or either word map is
empty is left out of every combination method (complete cases) and counted (``empty``). A *combination* of two
non-empty word maps can still be all zero (multiply, when the two maps share no support after normalisation): that
is the method's own prediction, nothing at all where the phrase map has mass, and scores cosine 0.

The image is the unit of the tests: an image's two phrase types are averaged before the paired t-tests over images
(they share the image and the base word, so they are not independent).

Fig. 14 uses the model's CLIP scores, on two scales: the paper's *ratio* to the base word on the same image
(``rel_score = score(text) / score(base word)``; the base word sits at 1), and the *difference* from it
(``diff_score = score(text) - score(base word)``; the base word at 0). Dividing both axes of a regression by the
same noisy base score correlates them by construction, which inflates R² on the ratio scale, so both are reported.
The map similarity is the cosine between the text's map and the base word's map (both min-max normalised; NaN when
either is empty).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from gradeclip import metrics as map_metrics

from .attributes import vector_cosine
from .stats import bootstrap_interval, holm, ols_fit, one_sample_test, paired_test

COMBINATIONS = ("add", "multiply", "maximum")
PHRASE_TYPES = ("matched", "mismatched")
GROUPS = ("adj+noun", "verb+noun")
DESIGN_COLUMNS = ("image_id", "group", "base", "matched", "mismatched", "matched_phrase", "mismatched_phrase")
#: Fig. 14 point kinds, in plotting order.
KINDS = ("base word", "matched word", "mismatched word", "matched phrase", "mismatched phrase")


def minmax_normalise(heatmap: np.ndarray) -> np.ndarray:
    """``(m - min) / (max - min)`` in float64 (``gradeclip.metrics.minmax``: a constant map becomes all zeros); a map
    holding NaN or inf is an error here (a study map must be finite)."""
    a = np.asarray(heatmap, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError("map contains NaN or inf")
    return map_metrics.minmax(a, dtype=np.float64)


def combine_maps(a: np.ndarray, b: np.ndarray, how: str) -> np.ndarray:
    """Combine two word maps after min-max normalising each: ``add``, ``multiply`` or ``maximum``."""
    a, b = minmax_normalise(a), minmax_normalise(b)
    if a.shape != b.shape:
        raise ValueError(f"word maps differ in shape: {a.shape} vs {b.shape}")
    if how == "add":
        return a + b
    if how == "multiply":
        return a * b
    if how == "maximum":
        return np.maximum(a, b)
    raise ValueError(f"unknown combination {how!r}; expected one of {COMBINATIONS}")


def map_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two maps (flattened); NaN when either is all zero."""
    return vector_cosine(a, b)


def addibility_scores(word_a: np.ndarray, word_b: np.ndarray, phrase: np.ndarray,
                      methods: Sequence[str] = COMBINATIONS) -> dict[str, float]:
    """``{method: cosine(minmax(phrase), combine_maps(word_a, word_b, method))}``; every method NaN when the phrase
    map or a word map is empty (no contrast), 0 for an all-zero combination of non-empty maps (module docstring)."""
    target = minmax_normalise(phrase)
    if not (target.any() and minmax_normalise(word_a).any() and minmax_normalise(word_b).any()):
        return {m: float("nan") for m in methods}
    out = {}
    for m in methods:
        combined = combine_maps(word_a, word_b, m)
        out[m] = map_cosine(target, combined) if combined.any() else 0.0
    return out


def _check_design(design: pd.DataFrame) -> None:
    missing = set(DESIGN_COLUMNS) - set(design.columns)
    if missing:
        raise ValueError(f"design table lacks columns {sorted(missing)}; expected {DESIGN_COLUMNS}")


def _get(lookup: Mapping, key: tuple, what: str):
    try:
        return lookup[key]
    except KeyError:
        raise KeyError(f"no {what} for (image_id, text) = {key!r}") from None


def addibility_table(design: pd.DataFrame, maps: Mapping[tuple[Hashable, str], np.ndarray],
                     methods: Sequence[str] = COMBINATIONS) -> pd.DataFrame:
    """Long table of addibility scores: one row per image × phrase type × combination method.

    design: columns ``image_id, group, base, matched, mismatched, matched_phrase, mismatched_phrase``.
    maps:   ``(image_id, text) → map`` for the base word, both words and both phrases.
    Returns columns ``image_id, group, phrase_type, phrase, method, cosine, empty`` (``empty``: the phrase map or a
    word map has no contrast, so every method's cosine is NaN).
    """
    _check_design(design)
    rows = []
    for r in design.itertuples(index=False):
        base = _get(maps, (r.image_id, r.base), "map")
        for ptype in PHRASE_TYPES:
            word, phrase = getattr(r, ptype), getattr(r, f"{ptype}_phrase")
            scores = addibility_scores(_get(maps, (r.image_id, word), "map"), base,
                                       _get(maps, (r.image_id, phrase), "map"), methods)
            empty = all(np.isnan(c) for c in scores.values())
            rows += [{"image_id": r.image_id, "group": r.group, "phrase_type": ptype, "phrase": phrase,
                      "method": m, "cosine": c, "empty": empty} for m, c in scores.items()]
    return pd.DataFrame(rows)


def table_viii(scores: pd.DataFrame) -> pd.DataFrame:
    """Table VIII layout from :func:`addibility_table`: one row per combination method (column ``method``), one
    column per (phrase type, group) with the mean cosine over the complete cases, then ``n images`` (complete for at
    least one phrase type: the unit of the tests) and ``empty (left out)``: (image, phrase type) cases left out
    because a map was empty. The tests are :func:`method_tests`."""
    kept = scores[~scores["empty"].astype(bool)] if "empty" in scores else scores
    means = kept.pivot_table(index="method", columns=["phrase_type", "group"], values="cosine", aggfunc="mean")
    methods = [m for m in COMBINATIONS if m in means.index] + [m for m in means.index if m not in COMBINATIONS]
    cells = [(p, g) for p in PHRASE_TYPES for g in GROUPS if (p, g) in means.columns]
    table = means.reindex(index=methods, columns=cells)
    table.columns = [f"{p} | {g}" for p, g in cells]
    table["n images"] = kept.groupby("method")["image_id"].nunique().reindex(methods)
    empty = scores.drop_duplicates(["image_id", "phrase_type"])
    table["empty (left out)"] = int(empty["empty"].sum()) if "empty" in empty else 0
    return table.rename_axis("method").reset_index()


def per_image_cosines(scores: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Image × method table of cosines averaged within the image (over its complete phrase types, or within the
    groups ``by``): the unit of the tests."""
    kept = scores[~scores["empty"].astype(bool)] if "empty" in scores else scores.dropna(subset=["cosine"])
    return kept.pivot_table(index=["image_id", *by], columns="method", values="cosine", aggfunc="mean")


def method_tests(scores: pd.DataFrame, reference: str = "add", by: Sequence[str] = (),
                 alpha: float = 0.05) -> pd.DataFrame:
    """Paired t-tests over images of the reference combination against each other method, on the cosine averaged
    within each image (optionally within ``by`` groups, e.g. ``("phrase_type",)``: one value per image in each).
    mean_diff = reference - method (positive: the reference matches the phrase map better, the paper's claim),
    with its CI, Cohen's dz and its CI and the minimum detectable effect; Holm over all the rows (one family)."""
    wide = per_image_cosines(scores, by)
    out = []
    groups = wide.groupby(level=list(by)) if by else [((), wide)]
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        for m in sub.columns:
            if m == reference:
                continue
            row = {**dict(zip(by, key)), "method": m, "reference": reference}
            try:
                row.update(paired_test(sub[reference].to_numpy(), sub[m].to_numpy(), alpha))
            except ValueError as err:  # e.g. a tiny run: report, do not fail the study
                row.update(n=int((sub[m].notna() & sub[reference].notna()).sum()), p=np.nan, note=str(err))
            out.append(row)
    table = pd.DataFrame(out)
    if len(table):
        table["p_holm"] = holm(table["p"])
    return table


def fig14_points(design: pd.DataFrame, maps: Mapping[tuple[Hashable, str], np.ndarray],
                 scores: Mapping[tuple[Hashable, str], float] | pd.DataFrame) -> pd.DataFrame:
    """Fig. 14 (left) data: per image and kind, the relative CLIP score and the map similarity to the base.

    scores: ``(image_id, text) → CLIP score``, or a DataFrame with columns ``image_id, text, score``.
    Returns columns ``image_id, group, kind, text, score, rel_score, diff_score, map_similarity``; the base word
    row has rel_score = 1, diff_score = 0 and map_similarity = 1 by construction (NaN when its map is empty).
    """
    _check_design(design)
    if isinstance(scores, pd.DataFrame):
        scores = dict(zip(zip(scores["image_id"], scores["text"]), scores["score"]))
    rows = []
    for r in design.itertuples(index=False):
        base_map = minmax_normalise(_get(maps, (r.image_id, r.base), "map"))
        base_score = float(_get(scores, (r.image_id, r.base), "score"))
        texts = dict(zip(KINDS, (r.base, r.matched, r.mismatched, r.matched_phrase, r.mismatched_phrase)))
        for kind, text in texts.items():
            s = float(_get(scores, (r.image_id, text), "score"))
            sim = map_cosine(minmax_normalise(_get(maps, (r.image_id, text), "map")), base_map)
            rows.append({"image_id": r.image_id, "group": r.group, "kind": kind, "text": text, "score": s,
                         "rel_score": s / base_score, "diff_score": s - base_score, "map_similarity": sim})
    return pd.DataFrame(rows)


#: Fig. 14's two scales: column of :func:`fig14_points`, label.
SCALES = {"ratio": "rel_score", "difference": "diff_score"}


def fig14_pairs(points: pd.DataFrame, scale: str = "ratio") -> pd.DataFrame:
    """Fig. 14 (right) data: per image and phrase type, the word's and the phrase's score relative to the base word
    on ``scale`` ("ratio": score / base score, the paper's; "difference": score - base score).

    Returns columns ``image_id, group, phrase_type, word_rel_score, phrase_rel_score`` (named for the ratio scale
    whichever scale is asked for).
    """
    column = SCALES[scale]
    wide = points.pivot_table(index=["image_id", "group"], columns="kind", values=column)
    parts = []
    for ptype in PHRASE_TYPES:
        part = wide[[f"{ptype} word", f"{ptype} phrase"]].rename(
            columns={f"{ptype} word": "word_rel_score", f"{ptype} phrase": "phrase_rel_score"}).reset_index()
        part.insert(2, "phrase_type", ptype)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.columns.name = None
    return out


def fig14_regressions(points: pd.DataFrame, scales: Sequence[str] = ("ratio", "difference")) -> pd.DataFrame:
    """OLS of the phrase's relative score on the word's, one row per scale and phrase type (slope, CI, p, R², n);
    a fit that cannot be made (too few points) is a row with a note."""
    rows = []
    for scale in scales:
        for ptype, g in fig14_pairs(points, scale).groupby("phrase_type", sort=False):
            try:
                rows.append({"scale": scale, "phrase_type": ptype,
                             **ols_fit(g["word_rel_score"], g["phrase_rel_score"]), "note": ""})
            except ValueError as err:
                rows.append({"scale": scale, "phrase_type": ptype,
                             "n": int(g[["word_rel_score", "phrase_rel_score"]].notna().all(axis=1).sum()),
                             "note": str(err)})
    return pd.DataFrame(rows)


def r2_difference(points: pd.DataFrame, scales: Sequence[str] = ("ratio", "difference"), n_boot: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """The paper contrasts the two fits (matched: "a strong linear trend", mismatched: "R² extremely low"): R² of the
    matched fit minus R² of the mismatched fit, with a percentile bootstrap interval over images (both fits
    resampled together, ``n_boot`` draws, seeded). One row per scale."""
    rows = []
    for scale in scales:
        pairs = fig14_pairs(points, scale).dropna(subset=["word_rel_score", "phrase_rel_score"])
        both = pairs.pivot_table(index="image_id", columns="phrase_type",
                                 values=["word_rel_score", "phrase_rel_score"]).dropna()
        if len(both) < 4:
            rows.append({"scale": scale, "n": len(both), "r2_matched": np.nan, "r2_mismatched": np.nan,
                         "r2_diff": np.nan, "r2_diff_ci_low": np.nan, "r2_diff_ci_high": np.nan})
            continue
        x = {p: both[("word_rel_score", p)].to_numpy() for p in PHRASE_TYPES}
        y = {p: both[("phrase_rel_score", p)].to_numpy() for p in PHRASE_TYPES}

        def r2(p, idx):
            xs, ys = x[p][idx], y[p][idx]
            if np.ptp(xs) == 0 or np.ptp(ys) == 0:
                return np.nan
            return float(np.corrcoef(xs, ys)[0, 1] ** 2)

        est, low, high = bootstrap_interval(lambda idx: r2("matched", idx) - r2("mismatched", idx), len(both),
                                            n_boot=n_boot, seed=seed)
        everyone = np.arange(len(both))
        rows.append({"scale": scale, "n": len(both), "r2_matched": r2("matched", everyone),
                     "r2_mismatched": r2("mismatched", everyone), "r2_diff": est, "r2_diff_ci_low": low,
                     "r2_diff_ci_high": high})
    return pd.DataFrame(rows)


#: The paper's reading of Fig. 14 as tests on the difference scale, one value per image:
#: (claim, text kind, reference kind, paper's direction: +1 = kind scores higher than the reference).
SCORE_CLAIMS = (
    ("mismatched word scores below the base word", "mismatched word", "base word", -1),
    ("mismatched phrase scores below the base word", "mismatched phrase", "base word", -1),
    ("mismatched phrase scores above the mismatched word", "mismatched phrase", "mismatched word", +1),
    ("matched phrase scores above the base word", "matched phrase", "base word", +1),
)


def score_claim_tests(points: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The paper's Fig. 14 claims about CLIP scores, tested over images: for each claim the per-image score
    difference kind - reference, oriented so that a positive ``mean_diff`` is the paper's direction; paired t-test
    with dz and its CI; Holm over the claims (one family)."""
    wide = points.pivot_table(index="image_id", columns="kind", values="score")
    out = []
    for claim, kind, reference, direction in SCORE_CLAIMS:
        row = {"claim": claim, "kind": kind, "reference": reference}
        if kind not in wide or reference not in wide:
            out.append({**row, "n": 0, "p": np.nan, "note": "kind not in the points"})
            continue
        diff = direction * (wide[kind] - wide[reference])
        try:
            row.update(one_sample_test(diff.to_numpy(), 0.0, alpha))
        except ValueError as err:
            row.update(n=int(diff.notna().sum()), p=np.nan, note=str(err))
        out.append(row)
    table = pd.DataFrame(out)
    table["p_holm"] = holm(table["p"])
    return table


def map_similarity_summary(points: pd.DataFrame) -> pd.DataFrame:
    """Mean heat-map similarity to the base word per text kind over images (non-empty maps), with a 95% t-interval:
    the paper reads the mismatched phrase's maps as close to the base word's ("near 1")."""
    rows = []
    for kind in KINDS[1:]:
        x = points.loc[points["kind"] == kind, "map_similarity"].dropna().to_numpy()
        if len(x) < 2:
            rows.append({"kind": kind, "n": len(x), "mean": np.nan, "ci_low": np.nan, "ci_high": np.nan})
            continue
        t = one_sample_test(x)
        rows.append({"kind": kind, "n": t["n"], "mean": t["mean_a"], "ci_low": t["mean_diff_ci_low"],
                     "ci_high": t["mean_diff_ci_high"]})
    return pd.DataFrame(rows)
