"""§V-A: concept decomposition and addibility (Table VIII, Fig. 14).

Design of the experiment (one row per image, the paper's 60 COCO images): a base word ("horse"), a matched
word ("young"), a mismatched word ("white"), and the two phrases built from them ("young horse", "white
horse"); ``group`` says whether the words are ``adj+noun`` or ``verb+noun``.

Normalisation — the one used throughout this module: every map (word maps *and* phrase map) is min-max
normalised to [0, 1], ``(m - m.min()) / (m.max() - m.min())``; a constant map becomes all zeros. The
combinations are then ``add`` (a + b), ``multiply`` (a · b) and ``maximum`` (max(a, b)) of the two normalised
word maps, and the addibility score is the cosine similarity between the normalised phrase map and the
combination (cosine is scale-free, so "add" needs no further rescaling). A cosine with an all-zero map is
NaN.

Fig. 14 uses the raw CLIP scores: the *relative* score of a text is ``score(text) / score(base word)`` on the
same image (the paper's "relative to the base word"; the base word sits at 1), and the map similarity is
the cosine between the text's map and the base word's map (both min-max normalised).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.spatial import distance as spd

from .stats import ols_fit, paired_ttest

COMBINATIONS = ("add", "multiply", "maximum")
PHRASE_TYPES = ("matched", "mismatched")
GROUPS = ("adj+noun", "verb+noun")
DESIGN_COLUMNS = ("image_id", "group", "base", "matched", "mismatched", "matched_phrase", "mismatched_phrase")
#: Fig. 14 point kinds, in plotting order.
KINDS = ("base word", "matched word", "mismatched word", "matched phrase", "mismatched phrase")


def minmax_normalise(heatmap: np.ndarray) -> np.ndarray:
    """``(m - min) / (max - min)`` in float64; a constant map (no contrast) becomes all zeros."""
    a = np.asarray(heatmap, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError("map contains NaN or inf")
    lo, hi = a.min(), a.max()
    if hi == lo:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


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
    """Cosine similarity of two maps (flattened); NaN when either is all zeros."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {a.size} vs {b.size}")
    if not a.any() or not b.any():
        return float("nan")
    return float(1.0 - spd.cosine(a, b))


def addibility_scores(word_a: np.ndarray, word_b: np.ndarray, phrase: np.ndarray,
                      methods: Sequence[str] = COMBINATIONS) -> dict[str, float]:
    """``{method: cosine(minmax(phrase), combine_maps(word_a, word_b, method))}``."""
    target = minmax_normalise(phrase)
    return {m: map_cosine(target, combine_maps(word_a, word_b, m)) for m in methods}


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
    Returns columns ``image_id, group, phrase_type, phrase, method, cosine``.
    """
    _check_design(design)
    rows = []
    for r in design.itertuples(index=False):
        base = _get(maps, (r.image_id, r.base), "map")
        for ptype in PHRASE_TYPES:
            word, phrase = getattr(r, ptype), getattr(r, f"{ptype}_phrase")
            scores = addibility_scores(_get(maps, (r.image_id, word), "map"), base,
                                       _get(maps, (r.image_id, phrase), "map"), methods)
            rows += [{"image_id": r.image_id, "group": r.group, "phrase_type": ptype, "phrase": phrase,
                      "method": m, "cosine": c} for m, c in scores.items()]
    return pd.DataFrame(rows)


def table_viii(scores: pd.DataFrame, reference: str = "add") -> pd.DataFrame:
    """Table VIII layout from :func:`addibility_table`.

    Rows = combination method; columns = (phrase type, group) means of the cosine, then ``p vs add``: the
    two-sided paired t-test (scipy ``ttest_rel``) of the method against ``reference`` over all
    image × phrase-type pairs, and ``n`` pairs. The reference row has NaN there.
    """
    means = scores.pivot_table(index="method", columns=["phrase_type", "group"], values="cosine", aggfunc="mean")
    methods = [m for m in COMBINATIONS if m in means.index] + [m for m in means.index if m not in COMBINATIONS]
    means = means.reindex(index=methods)
    tests = method_ttests(scores, reference)
    means[("p vs " + reference, "")] = tests.set_index("method")["p"].reindex(methods)
    means[("n pairs", "")] = tests.set_index("method")["n"].reindex(methods)
    return means


def method_ttests(scores: pd.DataFrame, reference: str = "add", by: Sequence[str] = ()) -> pd.DataFrame:
    """Paired t-tests of each method's cosine against ``reference``, pairing rows with equal
    (image_id, phrase_type) — optionally within groups ``by`` (e.g. ``("group", "phrase_type")``)."""
    wide = scores.pivot_table(index=["image_id", "group", "phrase_type"], columns="method", values="cosine")
    out = []
    groups = wide.groupby(level=list(by)) if by else [((), wide)]
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        for m in sub.columns:
            if m == reference:
                out.append({**dict(zip(by, key)), "method": m, "p": np.nan, "t": np.nan,
                            "n": int(sub[m].notna().sum())})
                continue
            complete = int((sub[m].notna() & sub[reference].notna()).sum())
            if complete < 2:  # e.g. a tiny run, or all-zero maps (undefined cosine): report, do not fail the study
                out.append({**dict(zip(by, key)), "method": m, "p": np.nan, "t": np.nan, "n": complete,
                            "note": "fewer than 2 complete pairs: no test"})
                continue
            res = paired_ttest(sub[m], sub[reference])
            out.append({**dict(zip(by, key)), "method": m, **res})
    return pd.DataFrame(out)


def fig14_points(design: pd.DataFrame, maps: Mapping[tuple[Hashable, str], np.ndarray],
                 scores: Mapping[tuple[Hashable, str], float] | pd.DataFrame) -> pd.DataFrame:
    """Fig. 14 (left) data: per image and kind, the relative CLIP score and the map similarity to the base.

    scores: ``(image_id, text) → CLIP score``, or a DataFrame with columns ``image_id, text, score``.
    Returns columns ``image_id, group, kind, text, score, rel_score, map_similarity``; the base word row
    has rel_score = 1 and map_similarity = 1 by construction.
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
                         "rel_score": s / base_score, "map_similarity": sim})
    return pd.DataFrame(rows)


def fig14_pairs(points: pd.DataFrame) -> pd.DataFrame:
    """Fig. 14 (right) data: per image and phrase type, relative score of the word vs of its phrase.

    Returns columns ``image_id, group, phrase_type, word_rel_score, phrase_rel_score``.
    """
    wide = points.pivot_table(index=["image_id", "group"], columns="kind", values="rel_score")
    parts = []
    for ptype in PHRASE_TYPES:
        part = wide[[f"{ptype} word", f"{ptype} phrase"]].rename(
            columns={f"{ptype} word": "word_rel_score", f"{ptype} phrase": "phrase_rel_score"}).reset_index()
        part.insert(2, "phrase_type", ptype)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.columns.name = None
    return out


def fig14_regressions(points: pd.DataFrame) -> pd.DataFrame:
    """OLS of phrase relative score on word relative score, one row per phrase type (slope, CI, p, R², n)."""
    pairs = fig14_pairs(points)
    rows = []
    for ptype, g in pairs.groupby("phrase_type", sort=False):
        rows.append({"phrase_type": ptype, **ols_fit(g["word_rel_score"], g["phrase_rel_score"])})
    return pd.DataFrame(rows)
