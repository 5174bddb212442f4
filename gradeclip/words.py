"""From CLIP's BPE tokens back to the words of the input string.

A "word" is a run of letters/digits (with inner apostrophes, "dog's", "rock'n'roll", and decimal numbers, "3.5"), and
every other run of non-space characters (punctuation, emoji) is its own item flagged ``is_word=False``. CLIP's
tokenizer almost never builds a token across such a boundary (its split pattern separates letters, single digits and
symbol runs, and BPE works inside each piece), so encoding the items one by one gives the tokens of the whole
string, each token tagged with the item it came from. Two exceptions join neighbouring items into one: a quote read
as a contraction ("'stop'" is tokenized "'s", "top", "'") and HTML entities unescaped by the text cleaning ("&amp;").
``align`` checks the result against the whole string's tokens and says so when they still differ.
"""
from __future__ import annotations

import html
import warnings
from dataclasses import dataclass

import regex

WORD_PATTERN = regex.compile(
    r"\p{N}+(?:[.,]\p{N}+)+"  # decimal numbers: 3.5, 1,000
    r"|[\p{L}\p{N}\p{M}_]+(?:['’][\p{L}\p{N}\p{M}]+)*"  # words, with inner apostrophes
    r"|[^\s\p{L}\p{N}\p{M}_]+"  # punctuation / symbol / emoji runs
)


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # character offsets in the input string
    end: int
    is_word: bool  # False for punctuation / symbols


@dataclass(frozen=True)
class AlignedText:
    """A text tokenized for the model with each content token tagged by its word."""

    text: str
    words: list[Word]
    token_ids: list[int]  # SOT, content tokens, EOT (no padding)
    token_word: list[int]  # word index of each content token (len = len(token_ids) - 2)
    truncated: bool  # content tokens past the context were cut


class EmptyTextError(ValueError):
    """The text has nothing to tokenize."""


def _is_word(s: str) -> bool:
    # html.unescape as CLIP's text cleaning does: a merged "&amp;" is the punctuation "&", not a word
    return bool(regex.search(r"[\p{L}\p{N}]", html.unescape(s)))


def split_words(text: str) -> list[Word]:
    return [Word(m.group(), m.start(), m.end(), _is_word(m.group())) for m in WORD_PATTERN.finditer(text)]


def align(tokenizer, text: str, context_length: int = 77) -> AlignedText:
    """Tokenize ``text`` as open_clip's tokenizer does (SOT + up to context-2 tokens + EOT) and tag each token with
    the word it belongs to. A text longer than the context is truncated with a warning naming it."""
    if not hasattr(tokenizer, "encode") or not hasattr(tokenizer, "sot_token_id"):
        raise TypeError(f"word-level text maps need open_clip's SimpleTokenizer (BPE); got {type(tokenizer).__name__}")
    words = split_words(text)
    if not words:
        raise EmptyTextError(f"text {text!r} is empty: nothing to explain")
    room = context_length - 2
    ids, owner = _encode_items(tokenizer, words)
    if not ids:
        raise EmptyTextError(f"text {text!r} has no tokens after CLIP's text cleaning")
    whole = tokenizer.encode(text)
    if whole != ids:
        # A token of the whole string spans two items: CLIP's pattern reads a quote before s/t/m/d/re/ve/ll as a
        # contraction ("'stop'" is read as "'s" + "top" + "'"), and the text cleaning unescapes HTML entities
        # ("&amp;" -> "&"). Merge those items so that the tokens are exactly the model's.
        words = _merge_split_tokens(tokenizer, text, words, whole, room)
        ids, owner = _encode_items(tokenizer, words)
        if whole[:room] != ids[:room]:
            warnings.warn(f"text {text!r}: word-by-word tokenization differs from the whole-string tokenization; "
                          "explaining the word-by-word tokens", stacklevel=2)
    truncated = len(ids) > room
    if truncated:
        kept_words = owner[room - 1] + 1
        warnings.warn(f"text {text[:60]!r}{'...' if len(text) > 60 else ''} has {len(ids)} tokens, more than the "
                      f"context of {context_length}: truncated after word {kept_words} of {len(words)} "
                      f"({words[owner[room - 1]].text!r})", stacklevel=2)
        ids, owner = ids[:room], owner[:room]
    return AlignedText(text, words, [tokenizer.sot_token_id, *ids, tokenizer.eot_token_id], owner, truncated)


def _encode_items(tokenizer, words: list[Word]) -> tuple[list[int], list[int]]:
    ids, owner = [], []
    for i, word in enumerate(words):
        piece = tokenizer.encode(word.text)
        ids += piece
        owner += [i] * len(piece)
    return ids, owner


def _merge_split_tokens(tokenizer, text: str, words: list[Word], whole: list[int], room: int) -> list[Word]:
    """Join neighbouring items wherever cutting the text between them changes its tokenization (checked against the
    whole string's tokens, up to the context: items past it are not explained)."""
    merged = [words[0]]
    for word in words[1:]:
        cut = merged[-1].end
        prefix = tokenizer.encode(text[:cut])
        if len(prefix) > room or prefix + tokenizer.encode(text[cut:]) == whole:
            merged.append(word)
        else:
            last = merged[-1]
            merged[-1] = Word(text[last.start:word.end], last.start, word.end, _is_word(text[last.start:word.end]))
    return merged


def token_strings(tokenizer, token_ids: list[int]) -> list[str]:
    """Readable BPE pieces ('</w>' marks the end of a word piece in CLIP's vocabulary)."""
    return [tokenizer.decode([t]).strip() for t in token_ids]
