"""One cached analysis per text, shared by every heuristic filter.

Filters run one after another over the same batch; without sharing, each would split the
text into words and lines again. `analyze(text)` memoizes on the string (whose hash Python
caches) in a cache bounded by total characters, so the first filter pays for the split and
the others reuse it. Properties are lazy:
a doc dropped by the first filter never pays for the n-gram work of the last.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import cached_property

import numpy as np

from ..tokens import words

CJK_LANGS = frozenset({"ja", "zh", "ko"})
_HIRAGANA = re.compile("[\u3041-\u309f]")
_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s")
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
PARAGRAPH = re.compile(r"\n{2,}")
_P = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier for polynomial n-gram hashes


class TextStats:
    __slots__ = ("__dict__", "text")

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def words(self) -> list[str]:
        return words(self.text)

    @cached_property
    def content_words(self) -> list[str]:
        """Words that are not punctuation runs (the tokenizer's symbol tokens start with one)."""
        return [w for w in self.words if w[0].isalnum() or w[0] == "_" or (len(w) > 1 and w[-1].isalnum())]

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    @cached_property
    def n_nonspace(self) -> int:
        return len(self.text) - len(_SPACE.findall(self.text))

    @cached_property
    def n_letter_or_digit(self) -> int:
        return len(_LETTER_OR_DIGIT.findall(self.text))

    @cached_property
    def n_digits(self) -> int:
        return len(_DIGIT.findall(self.text))

    @cached_property
    def n_hiragana(self) -> int:
        return len(_HIRAGANA.findall(self.text))

    @cached_property
    def word_ids(self) -> np.ndarray:
        """Words as dense ints (equal words, equal ids): n-gram work happens on integers."""
        vocab: dict[str, int] = {}
        ids = [vocab.setdefault(w, len(vocab)) for w in self.words]
        return np.asarray(ids, dtype=np.uint64)

    @cached_property
    def word_len_cumsum(self) -> np.ndarray:
        lens = np.fromiter(map(len, self.words), dtype=np.int64, count=len(self.words))
        return np.concatenate(([0], np.cumsum(lens)))

    def ngram_hashes(self, n: int) -> np.ndarray:
        """64-bit polynomial hashes of all word n-grams (built incrementally from n-1)."""
        cache = self.__dict__.setdefault("_ngram", {1: self.word_ids})
        if n not in cache:
            prev = self.ngram_hashes(n - 1)
            with np.errstate(over="ignore"):
                cache[n] = prev[:-1] * _P + self.word_ids[n - 1 :]
        return cache[n]

    def ngram_chars(self, n: int, sep: int) -> np.ndarray:
        """Characters of each n-gram: its words plus `sep` per gap (1 for space-separated)."""
        c = self.word_len_cumsum
        return c[n:] - c[:-n] + sep * (n - 1)


# Bounded by characters, not entries: 4096 entries of 100 kB pages would be gigabytes of word
# lists. 8M characters holds a whole default batch (1000 docs) of ordinary web pages.
MAX_CACHED_CHARS = 8_000_000
_cache: OrderedDict[str, TextStats] = OrderedDict()
_cached_chars = 0


def analyze(text: str) -> TextStats:
    global _cached_chars
    st = _cache.get(text)
    if st is not None:
        _cache.move_to_end(text)
        return st
    st = _cache[text] = TextStats(text)
    _cached_chars += len(text)
    while _cached_chars > MAX_CACHED_CHARS and len(_cache) > 1:
        old, _ = _cache.popitem(last=False)
        _cached_chars -= len(old)
    return st


def clear_cache() -> None:
    global _cached_chars
    _cache.clear()
    _cached_chars = 0


def doc_language(doc: dict) -> str | None:
    """The language the language-ID step annotated, if it ran."""
    meta = doc.get("meta") or {}
    return meta.get("language")
