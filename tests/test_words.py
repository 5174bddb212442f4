"""BPE tokens back to words on hard strings: the token ids are always open_clip's own tokenizer output for the text
(truncation included), word spans index the original string, each word's tokens decode to that word, and a word's
score is the sum of its pieces' scores."""
from __future__ import annotations

import warnings

import numpy as np
import open_clip
import pytest

from gradeclip.explainer import GradECLIP
from gradeclip.words import EmptyTextError, align, split_words, token_strings
from tests.conftest import random_image


pytestmark = pytest.mark.usefixtures("one_torch_thread")


LONG_WORD = "pneumonoultramicroscopicsilicovolcanoconiosis"
HARD = [
    "Hello, world!",
    "a photo of a dog.",
    f"a {LONG_WORD} sample",
    "the dog's ball",
    "don't stop, it's fine",
    "rock'n'roll",
    "in 2024 there were 3.5 dogs and 1,000 cats",
    "a 🐶 and a 🐱!!",
    "dog🐶",
    "café au lait, naïve Zoë",
    "nai\u0308ve",  # decomposed: i + combining diaeresis
    "  a   dog\n\n\twith a   ball  \n",
    "a sign saying 'stop' on a 'do not enter' door",
    "'sup dogs' toys",
    "Tom &amp; Jerry &lt;3",
    "THE DOG",
    "snake_case and x-ray",
    "it’s “quoted”",
    "日本語のテキスト",
    "$5 @ 10:30 #tag",
]


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("ViT-B-16")


def _padded(ids, n=77):
    return ids + [0] * (n - len(ids))


def _word_ids(aligned, i):
    return [t for t, w in zip(aligned.token_ids[1:-1], aligned.token_word) if w == i]


@pytest.mark.parametrize("text", HARD)
def test_alignment_matches_open_clip_tokenizer(text, tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mismatch warning, no truncation warning
        a = align(tokenizer, text)
    assert _padded(a.token_ids) == tokenizer([text])[0].tolist()
    assert not a.truncated
    # word spans index the original string, in order, without overlap, covering every non-space character
    for w in a.words:
        assert text[w.start:w.end] == w.text
    assert all(u.end <= v.start for u, v in zip(a.words, a.words[1:]))
    assert "".join(w.text for w in a.words) == "".join(text.split())
    # every token belongs to a word, in order, and each word's tokens decode to the cleaned word
    assert len(a.token_word) == len(a.token_ids) - 2
    assert list(a.token_word) == sorted(a.token_word)
    for i, w in enumerate(a.words):
        ids = _word_ids(a, i)
        assert ids, (text, w)
        assert tokenizer.decode(ids).replace(" ", "") == tokenizer.clean_fn(w.text).replace(" ", ""), (text, w)


def test_words_of_hard_strings(tokenizer):
    def words(text):
        return [(w.text, w.is_word) for w in align(tokenizer, text).words]

    assert words("Hello, world!") == [("Hello", True), (",", False), ("world", True), ("!", False)]
    assert words("the dog's ball") == [("the", True), ("dog's", True), ("ball", True)]
    assert words("don't stop") == [("don't", True), ("stop", True)]
    assert words("rock'n'roll") == [("rock'n'roll", True)]
    assert words("café au lait, naïve") == [("café", True), ("au", True), ("lait", True), (",", False),
                                            ("naïve", True)]
    assert words("nai\u0308ve") == [("nai\u0308ve", True)]
    assert words("a 🐶 and a 🐱!!") == [("a", True), ("🐶", False), ("and", True), ("a", True), ("🐱!!", False)]
    assert words("  a   dog\n\n\tball  \n") == [("a", True), ("dog", True), ("ball", True)]
    # a quote that CLIP reads as a contraction ('s, 't, 'd...) joins the word it is glued to
    assert words("saying 'stop' now") == [("saying", True), ("'stop", True), ("'", False), ("now", True)]
    assert words("Tom &amp; Jerry") == [("Tom", True), ("&amp;", False), ("Jerry", True)]


def test_numbers_are_one_word_of_digit_tokens(tokenizer):
    a = align(tokenizer, "in 2024 about 3.5 dogs")
    texts = [w.text for w in a.words]
    assert texts == ["in", "2024", "about", "3.5", "dogs"]
    year = _word_ids(a, 1)
    assert len(year) == 4 and [s.strip() for s in token_strings(tokenizer, year)] == ["2", "0", "2", "4"]
    assert [s.strip() for s in token_strings(tokenizer, _word_ids(a, 3))] == ["3", ".", "5"]


def test_multi_piece_word(tokenizer):
    a = align(tokenizer, f"a {LONG_WORD} sample")
    assert [w.text for w in a.words] == ["a", LONG_WORD, "sample"]
    pieces = _word_ids(a, 1)
    assert len(pieces) >= 3  # BPE splits the rare word into several pieces
    assert tokenizer.decode(pieces).replace(" ", "") == LONG_WORD
    assert len(_word_ids(a, 0)) == len(_word_ids(a, 2)) == 1


def test_word_score_is_the_sum_of_its_pieces_scores(vit):
    ex = GradECLIP(vit)
    texts = [f"a {LONG_WORD} on a café table", "in 2024 the dog's ball cost 3.5 dollars!"]
    for te in ex.explain_texts(texts, random_image(40, 30)):
        a = ex.align(te.text)
        assert list(te.token_word) == list(a.token_word)
        assert len(te.token_scores) == len(a.token_ids) - 2 == len(te.tokens)
        assert np.any(te.token_scores > 0)
        for i, w in enumerate(te.words):
            pieces = te.token_scores[[j for j, o in enumerate(a.token_word) if o == i]]
            assert te.word_scores[i] == pytest.approx(float(pieces.sum()), abs=1e-12), w
        multi = [i for i, w in enumerate(te.words) if w.text in (LONG_WORD, "2024", "3.5", "dog's")]
        assert multi and all(np.count_nonzero(te.token_word == i) > 1 for i in multi)
        assert te.importance().sum() == pytest.approx(1.0)


def _long_text():
    # 73 single-token words, a multi-piece word straddling the 75-token limit, then more words
    return " ".join(["dog"] * 73) + f" {LONG_WORD} " + " ".join(f"cat{i}" for i in range(30))


def test_long_text_is_truncated_like_open_clip_with_a_warning(tokenizer):
    text = _long_text()
    with pytest.warns(UserWarning, match="truncated") as record:
        a = align(tokenizer, text)
    message = str(record[0].message)
    assert repr(text[:60]) in message  # names the text
    assert a.truncated and len(a.token_ids) == 77
    assert a.token_ids == tokenizer([text])[0].tolist()  # same truncation (last token = EOT) as open_clip
    assert a.token_ids[-1] == tokenizer.eot_token_id
    # the tokens that fit: 73 "dog" and the first 2 pieces of the long word
    assert a.token_word[:73] == list(range(73)) and a.token_word[73:] == [73, 73]
    for w in a.words:
        assert text[w.start:w.end] == w.text


def test_truncated_text_reports_only_the_words_that_fit(vit, tokenizer):
    text = " ".join(f"word{i}" for i in range(60))  # "word", "0".. : > 77 tokens
    ex = GradECLIP(vit)
    with pytest.warns(UserWarning, match="truncated"):
        te = ex.explain_text(text, random_image(40, 30))
    assert te.truncated
    # reported: the words with at least one token among the 75 that fit (a word cut in the middle keeps the score
    # of its pieces that the model saw); none past the context
    starts = [len(tokenizer.encode(" ".join(f"word{j}" for j in range(i)))) for i in range(60)]
    n_reported = sum(1 for s in starts if s < 75)
    assert n_reported < 60
    assert len(te.words) == n_reported
    assert te.words[0].text == "word0" and all(w.text.startswith("word") for w in te.words)
    assert len(te.word_scores) == len(te.words) and te.token_word.max() == len(te.words) - 1
    assert len(te.token_scores) == 75
    not_truncated = ex.explain_text(" ".join(f"word{i}" for i in range(5)), random_image(40, 30))
    assert not not_truncated.truncated and len(not_truncated.words) == 5


def test_split_words_and_empty_texts(tokenizer):
    assert split_words("") == [] and split_words(" \n\t") == []
    for text in ["", "   ", "\n"]:
        with pytest.raises(EmptyTextError, match="empty"):
            align(tokenizer, text)
    a = align(tokenizer, "!!!")
    assert [(w.text, w.is_word) for w in a.words] == [("!!!", False)]
    assert _padded(a.token_ids) == tokenizer(["!!!"])[0].tolist()


def test_align_refuses_a_non_bpe_tokenizer():
    class HFTokenizer:
        def __call__(self, texts):
            return texts

    with pytest.raises(TypeError, match="SimpleTokenizer"):
        align(HFTokenizer(), "a dog")
