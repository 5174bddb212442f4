"""Word classes for the COCO triplets (§V-A): caption tokens, and WordNet's part-of-speech decisions with the stop
lists that keep determiners, quantifiers and auxiliaries out."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache


#: Words never taken as the matched/mismatched adjective: determiners, quantifiers and numbers (WordNet lists
#: "two", "many", "other" … as adjectives, but they do not describe the object).
ADJECTIVE_STOPWORDS = frozenset("""
a an the this that these those each every all both no some any another other others such only same own
many much more most few fewer several enough various numerous multiple lots lot single double couple pair
one two three four five six seven eight nine ten eleven twelve dozen hundred thousand first second third
last next previous top bottom front back left right middle center near far there here very
""".split())
#: Auxiliaries and light verbs never taken as the matched/mismatched verb.
VERB_STOPWORDS = frozenset("be is are was were been being am have has had having do does did doing get gets "
                           "got getting can could will would shall should may might must let lets".split())
#: Words allowed between a verb and its object noun ("feeding the sheep", "standing on skis").
DETERMINERS = frozenset("a an the some two three four several many his her their its this that these those "
                        "one another other".split())
PREPOSITIONS = frozenset("on in at with by from into onto over under near behind beside across along through "
                         "around up down off to of for".split())
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")


def caption_tokens(sentence: Mapping | str) -> list[str]:
    """Lower-case word tokens of a Karpathy sentence (its ``tokens``, else the ``raw`` text split)."""
    if isinstance(sentence, Mapping):
        tokens = sentence.get("tokens")
        if tokens:
            return [t.lower() for t in tokens if _TOKEN.fullmatch(t.lower())]
        sentence = sentence.get("raw", "")
    return _TOKEN.findall(str(sentence).lower())


class WordClasses:
    """Part-of-speech decisions for the COCO triplets, from WordNet (nltk, offline via
    :mod:`analysis.wordnet_data`).

    A word counts as an adjective when WordNet's tagged-sense frequency (``Lemma.count()``, SemCor) of its
    adjective reading is at least that of its noun and verb readings (words with no tagged senses: the reading
    with the most synsets); as a verb when it is an inflected form ("feeding", "stands") of a WordNet verb whose
    frequency dominates in the same way. Stop lists remove quantifiers, numbers and auxiliaries.
    Subclass (or pass ``adjectives``/``verbs`` dicts) to use other rules — the tests do.
    """

    def __init__(self, adjectives: Iterable[str] | None = None, verbs: Mapping[str, str] | None = None,
                 nouns: Mapping[str, str] | None = None):
        self._adjectives = None if adjectives is None else frozenset(adjectives)
        self._verbs = None if verbs is None else dict(verbs)
        self._nouns = None if nouns is None else dict(nouns)
        self._wn = None

    @property
    def wn(self):
        if self._wn is None:
            # lazy: WordNet's data is found (or its absence explained) only when a design first needs a word class
            from ..wordnet_data import ensure_wordnet

            ensure_wordnet()
            from nltk.corpus import wordnet

            wordnet.ensure_loaded()
            self._wn = wordnet
        return self._wn

    @lru_cache(maxsize=None)
    def _profile(self, word: str) -> dict[str, tuple[int, int, str | None]]:
        """``pos → (tagged count, n synsets, lemma)`` for n, v, a (adjectives include satellites)."""
        out = {}
        for pos in ("n", "v", "a"):
            lemma = self.wn.morphy(word, pos)
            synsets = self.wn.synsets(word, pos=pos)
            count = sum(l.count() for s in synsets for l in s.lemmas() if lemma and l.name().lower() == lemma)
            out[pos] = (count, len(synsets), lemma)
        return out

    def _dominant(self, word: str) -> str | None:
        prof = self._profile(word)
        if not any(n for _, n, _ in prof.values()):
            return None
        return max(("a", "v", "n"), key=lambda p: (prof[p][0], prof[p][1]))  # ties: a, then v, then n

    def is_adjective(self, word: str) -> bool:
        if word in ADJECTIVE_STOPWORDS or word in PREPOSITIONS or word in DETERMINERS or not word.isalpha():
            return False
        if self._adjectives is not None:
            return word in self._adjectives
        return self._dominant(word) == "a"

    def verb_lemma(self, word: str) -> str | None:
        """The verb's base form when ``word`` is an inflected verb form ("feeding" → "feed"), else None."""
        if not word.isalpha():
            return None
        if self._verbs is not None:
            lemma = self._verbs.get(word)
        else:
            lemma = self._profile(word)["v"][2]
            if lemma is None or lemma == word or self._dominant(word) != "v":
                return None
        return None if lemma is None or lemma in VERB_STOPWORDS or word in VERB_STOPWORDS else lemma

    def noun_lemma(self, word: str) -> str:
        """Singular form of a noun ("horses" → "horse"); the word itself when WordNet has none."""
        if self._nouns is not None:
            return self._nouns.get(word, word)
        return self.wn.morphy(word, "n") or word
