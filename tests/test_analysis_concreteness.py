"""analysis.concreteness and analysis.wordnet_data: normalisation, lookup with lemma fallback, frequency,
regressions — on known inputs."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import concreteness as C
from analysis import wordnet_data as WN

HAS_WORDNET = all((WN.DEBIAN_WORDNET_DIR / f).is_file() for f in WN.WORDNET_FILES)
needs_wordnet = pytest.mark.skipif(not HAS_WORDNET, reason="Debian packages wordnet-base wordnet-sense-index "
                                                           "not installed")


def test_normalise_per_sentence_max_is_one():
    df = pd.DataFrame({"sentence_id": [1, 1, 1, 2, 2, 3], "word_index": [0, 1, 2, 0, 1, 0],
                       "word": ["a", "dog", "runs", "red", "car", "x"],
                       "importance": [0.5, 2.0, 1.0, 3.0, 0.3, 0.0]})
    out = C.normalise_per_sentence(df)
    np.testing.assert_allclose(out["importance_norm"].iloc[:5], [0.25, 1.0, 0.5, 1.0, 0.1])
    assert math.isnan(out["importance_norm"].iloc[5])  # no positive importance: nothing to scale by
    assert "importance_norm" not in df  # input untouched


def test_word_importance_table_top_n_and_cleaning():
    df = pd.DataFrame({
        "sentence_id": [1, 1, 1, 2, 2, 2, 3, 3],
        "word_index": [0, 1, 2, 0, 1, 2, 0, 1],
        "word": ["A", "Dog", "runs.", "a", "dog", "!", "the", "cat"],
        "importance": [1.0, 4.0, 2.0, 1.0, 2.0, 0.5, 1.0, 1.0],
    })
    t = C.word_importance_table(df, top_n=2)
    assert t["word"].tolist() == ["a", "dog"]  # both twice; tie broken alphabetically; "!" dropped
    assert t.set_index("word").loc["dog", "mean_importance"] == pytest.approx(1.0)
    assert t.set_index("word").loc["a", "mean_importance"] == pytest.approx((0.25 + 0.5) / 2)
    assert t["rank"].tolist() == [1, 2] and t["count"].tolist() == [2, 2]
    full = C.word_importance_table(df, top_n=None, exclude=["A"])
    assert "a" not in set(full["word"]) and "runs" in set(full["word"])


def test_lookup_lemma_fallback_with_injected_ratings_and_missing_report():
    ratings = {"dog": 4.85, "run": 3.5, "Paris": 4.0}
    table = C.lookup_concreteness(["dog", "dogs", "running", "Paris", "zzqx"], ratings=ratings,
                                  lemmatize=lambda w, pos: {("dogs", "n"): "dog", ("running", "v"): "run"}
                                  .get((w, pos), w))
    t = table.set_index("word")
    assert t.loc["dog", "match"] == "exact"
    assert (t.loc["dogs", "match"], t.loc["dogs", "rated_form"], t.loc["dogs", "concreteness"]) == ("lemma", "dog", 4.85)
    assert t.loc["running", "rated_form"] == "run"
    assert t.loc["Paris", "match"] == "exact"
    miss = C.missing_words(table)
    assert miss["word"].tolist() == ["zzqx"] and math.isnan(miss["concreteness"].item())
    assert "no rated lemma" in miss["note"].item()


def test_lookup_without_fallback_reports_reason():
    t = C.lookup_concreteness(["dogs"], ratings={"dog": 4.85}, lemma_fallback=False)
    assert t["match"].item() == "missing" and "fallback off" in t["note"].item()


def test_lookup_degrades_gracefully_without_wordnet(monkeypatch):
    monkeypatch.setattr(C, "_default_lemmatizer", lambda: "install Debian packages wordnet-base ...")
    with pytest.warns(RuntimeWarning, match="lemma fallback disabled"):
        t = C.lookup_concreteness(["dog", "dogs"], ratings={"dog": 4.85})
    assert t["match"].tolist() == ["exact", "missing"]
    assert "wordnet-base" in t["note"].iloc[1]


@needs_wordnet
def test_lookup_brysbaert_with_wordnet_lemmas():
    t = C.lookup_concreteness(["dog", "skis", "sits", "Dog", "blorptastic"]).set_index("word")
    assert t.loc["dog", "concreteness"] == pytest.approx(4.85)  # Brysbaert 2014
    assert t.loc["dog", "match"] == "exact" and t.loc["Dog", "rated_form"] == "dog"
    assert (t.loc["skis", "match"], t.loc["skis", "rated_form"]) == ("lemma", "ski")
    assert (t.loc["sits", "match"], t.loc["sits", "rated_form"]) == ("lemma", "sit")
    assert t.loc["blorptastic", "match"] == "missing"


@needs_wordnet
def test_wordnet_lemmatizer_offline_dogs_to_dog():
    lem = WN.load_lemmatizer()  # project-local copy (idempotent), no download
    assert lem.lemmatize("dogs") == "dog"
    assert C.lemma_candidates("dogs", lem.lemmatize) == ["dog"]
    assert C.lemma_candidates("went", lem.lemmatize) == ["go"]
    assert (WN.default_data_dir() / "corpora/wordnet/lexnames").is_file()


def test_ensure_wordnet_copies_idempotently_and_errors_clearly(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))  # keep the fake corpus out of other tests
    src = tmp_path / "src"
    src.mkdir()
    for name in WN.WORDNET_FILES:
        (src / name).write_text(f"fake {name}\n")
    data = tmp_path / "data"
    assert WN.ensure_wordnet(data, source_dir=src) == data
    dest = data / "corpora" / "wordnet"
    assert all((dest / n).read_text() == f"fake {n}\n" for n in WN.WORDNET_FILES)
    assert not any(p.is_symlink() for p in dest.iterdir())
    assert (dest / "lexnames").read_text() == WN.lexnames_text()
    assert str(data) == nltk.data.path[0]
    mtimes = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    WN.ensure_wordnet(data, source_dir=src)  # second run copies nothing
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == mtimes
    with pytest.raises(WN.WordNetUnavailable, match="wordnet-base wordnet-sense-index"):
        WN.ensure_wordnet(tmp_path / "other", source_dir=tmp_path / "nowhere")


def test_default_data_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "x"))
    assert WN.default_data_dir() == tmp_path / "x"
    monkeypatch.delenv("NLTK_DATA")
    assert WN.default_data_dir() == Path(WN.__file__).resolve().parents[1] / ".cache" / "nltk_data"


def test_lexnames_standard_list():
    lines = WN.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
    assert lines[29] == "29\tverb.body\t2" and lines[43] == "43\tverb.weather\t2"


@needs_wordnet
def test_lexnames_agree_with_the_data_files():
    pos_of_file = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
    for name, pos in pos_of_file.items():
        with open(WN.DEBIAN_WORDNET_DIR / f"data.{name}", encoding="latin-1") as fh:
            used = {int(line.split(" ", 2)[1]) for line in fh if not line.startswith("  ")}
        assert used == {num for num, _, p in WN.LEXNAMES if p == pos}, name


def test_word_frequency_columns():
    t = C.add_word_frequency(pd.DataFrame({"word": ["the", "dog", "zzqxvw"]})).set_index("word")
    assert t.loc["the", "zipf"] > t.loc["dog", "zipf"] > 3
    assert t.loc["dog", "zipf"] == pytest.approx(t.loc["dog", "log10_freq"] + 9)
    assert t.loc["zzqxvw", "freq"] == 0 and math.isnan(t.loc["zzqxvw", "log10_freq"])


def _synthetic_importances(words_conc, slope, seed=0, per_word=20):
    rng = np.random.default_rng(seed)
    rows, sid = [], 0
    for word, conc in words_conc.items():
        for _ in range(per_word):
            # each sentence: the word, and a filler whose importance is the sentence max (=1 after scaling)
            imp = 0.05 + slope * (conc - 1) + rng.normal(0, 0.03)
            rows += [(sid, 0, word, max(imp, 0.0)), (sid, 1, "zzfiller", 1.0)]
            sid += 1
    return pd.DataFrame(rows, columns=["sentence_id", "word_index", "word", "importance"])


def test_study_recovers_concreteness_slope_and_controls_frequency():
    rng = np.random.default_rng(5)
    vocab = ["dog", "car", "table", "banana", "idea", "truth", "hope", "justice", "red", "tree", "run", "think",
             "beautiful", "freedom", "apple", "kitchen", "maybe", "very", "chair", "window", "reason", "theory",
             "cat", "horse", "street", "love", "fact", "sense", "bus", "pizza"]
    conc = dict(zip(vocab, rng.uniform(1.2, 4.9, len(vocab))))
    df = _synthetic_importances(conc, slope=0.2)
    study = C.concreteness_study(df, top_n=None, ratings=conc, exclude=["zzfiller"], lemma_fallback=False)
    assert len(study.words) == len(vocab) and study.missing.empty
    fit = study.concreteness_fit
    assert fit["slope_ci_low"] < 0.2 < fit["slope_ci_high"] and fit["slope_p"] < 1e-6 and fit["r2"] > 0.9
    slope, _ = np.polyfit(study.words["concreteness"], study.words["mean_importance"], 1)
    assert fit["slope"] == pytest.approx(slope)
    coefs = study.controlled_coefs
    assert list(coefs.index) == ["Intercept", "concreteness", "log10_freq"]
    assert coefs.loc["concreteness", "p"] < 1e-6
    assert coefs.loc["concreteness", "ci_low"] < 0.2 < coefs.loc["concreteness", "ci_high"]
    assert abs(coefs.loc["concreteness", "std_estimate"]) > 5 * abs(coefs.loc["log10_freq", "std_estimate"])
    assert -1 <= study.controlled_model["corr_predictors"] <= 1


def test_study_reports_unrated_words():
    conc = {"dog": 4.9, "idea": 1.6, "car": 4.8, "hope": 1.5}
    df = _synthetic_importances({**conc, "qwzx": 3.0}, slope=0.1, per_word=5)
    study = C.concreteness_study(df, top_n=None, ratings=conc, exclude=["zzfiller"], lemma_fallback=False)
    assert study.missing["word"].tolist() == ["qwzx"]
    assert study.concreteness_fit["n"] == 4


def test_read_original_brysbaert_file(tmp_path):
    # the published file's layout (tab-separated, these columns), three of its rows
    path = tmp_path / "Concreteness_ratings_Brysbaert_et_al_BRM.txt"
    path.write_text("Word\tBigram\tConc.M\tConc.SD\tUnknown\tTotal\tPercent_known\tSUBTLEX\tDom_Pos\n"
                    "banana\t0\t5\t0\t0\t27\t1\t912\tNoun\n"
                    "idea\t0\t1.61\t0.94\t0\t28\t1\t9403\tNoun\n"
                    "a cappella\t1\t2.92\t1.42\t2\t26\t0.92\t0\t#N/A\n")
    ratings = C.read_brysbaert_ratings(path)
    assert ratings == {"banana": 5.0, "idea": 1.61, "a cappella": 2.92}
    table = C.lookup_concreteness(["banana", "idea", "zzz"], ratings=ratings, lemma_fallback=False)
    assert table["match"].tolist() == ["exact", "exact", "missing"]
    bad = tmp_path / "other.csv"
    bad.write_text("word,rating\nbanana,5\n")
    with pytest.raises(ValueError, match="other.csv.*Conc.M"):
        C.read_brysbaert_ratings(bad)


def test_corpus_word_counts_across_chunks_and_files(tmp_path):
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text("The dog's ball. THE dog ran; the well-known cat\nsat.")
    b.write_text("dog cat the")
    for chunk in (3, 7, 1 << 20):  # words cut at every position of small chunks are re-joined
        counts = C.corpus_word_counts([a, b], chunk_chars=chunk)
        assert counts.to_dict() == {"the": 4, "dog": 2, "cat": 2, "dog's": 1, "ball": 1, "ran": 1,
                                    "well-known": 1, "sat": 1}, chunk
        assert counts.iloc[0] == counts.max()
    words = pd.DataFrame({"word": ["the", "cat", "unicorn"]})
    out = C.add_word_frequency(words, counts=counts)
    np.testing.assert_allclose(out["freq"], [4 / 13, 2 / 13, 0.0])
    assert math.isnan(out["log10_freq"].iloc[2])
    np.testing.assert_allclose(out["zipf"].iloc[0], math.log10(4 / 13) + 9)
