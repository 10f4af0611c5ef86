"""Gopher quality and repetition rules (Rae et al. 2021, arXiv:2112.11446, Table A1).

Defaults are the published numbers (the same ones datatrove uses). Reason codes match
datatrove's (`gopher_short_doc`, `dup_line_frac`, `top_2_gram`, `duplicated_5_n_grams`, ...)
so stats read the same to people who know it.

Japanese (and other CJK text, by the language-ID annotation): there are no spaces, so each
CJK character counts as a word (see `llm_recipe.data.tokens`); the mean-word-length rule is
skipped (it is defined on space-separated words), stop words are Japanese particles, and
n-gram character lengths have no separator. A Japanese word is ~2 characters (Sudachi short
units), so the repetition rules' word n-grams become character n-grams of
`round(n * cjk_chars_per_word)`: a "5-gram" is 10 characters. Without that scaling, natural
Japanese (`しています。` is 6 characters) trips the 5-gram rule constantly.

Repetition n-grams are computed on integer word ids with numpy (hash of each n-gram, counts
via `np.unique`); the exact greedy duplicate count of the paper only runs when a cheap upper
bound (all repeated n-gram positions) exceeds the threshold, which clean text almost never does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..pipeline import Doc, Filter
from .text_stats import CJK_LANGS, PARAGRAPH, TextStats, analyze, doc_language

STOP_WORDS_EN = ("the", "be", "to", "of", "and", "that", "have", "with")
STOP_WORDS_JA = ("の", "に", "は", "を", "が", "で", "と", "て", "た", "も")
_ALPHA = re.compile(r"[^\W\d_]")


class GopherQuality(Filter):
    name = "gopher_quality"

    def __init__(
        self,
        *,
        min_doc_words: int | None = 50,
        max_doc_words: int | None = 100_000,
        min_avg_word_length: float | None = 3,
        max_avg_word_length: float | None = 10,
        max_symbol_word_ratio: float | None = 0.1,
        max_bullet_lines_ratio: float | None = 0.9,
        max_ellipsis_lines_ratio: float | None = 0.3,
        min_alpha_words_ratio: float | None = 0.8,
        min_stop_words: int | None = 2,
        stop_words: Sequence[str] = STOP_WORDS_EN,
        stop_words_ja: Sequence[str] = STOP_WORDS_JA,
        **kw,
    ) -> None:
        super().__init__(**kw)
        self.min_doc_words, self.max_doc_words = min_doc_words, max_doc_words
        self.min_avg_word_length, self.max_avg_word_length = min_avg_word_length, max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.min_alpha_words_ratio = min_alpha_words_ratio
        self.min_stop_words = min_stop_words
        self.stop_words, self.stop_words_ja = frozenset(stop_words), frozenset(stop_words_ja)

    def reason(self, doc: Doc) -> str | None:
        st = analyze(doc["text"])
        cjk = doc_language(doc) in CJK_LANGS
        words = st.words
        n_words = len(words)
        if n_words == 0:
            return "gopher_short_doc"
        content = st.content_words
        n = len(content)
        if self.min_doc_words and n < self.min_doc_words:
            return "gopher_short_doc"
        if self.max_doc_words and n > self.max_doc_words:
            return "gopher_long_doc"
        if not cjk and n:
            avg = sum(map(len, content)) / n
            if self.min_avg_word_length and avg < self.min_avg_word_length:
                return "gopher_below_avg_threshold"
            if self.max_avg_word_length and avg > self.max_avg_word_length:
                return "gopher_above_avg_threshold"
        text = st.text
        if self.max_symbol_word_ratio:
            if text.count("#") / n_words > self.max_symbol_word_ratio:
                return "gopher_too_many_hashes"
            if (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
                return "gopher_too_many_ellipsis"
        lines = st.lines or [""]
        if self.max_bullet_lines_ratio:
            bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
            if bullets / len(lines) > self.max_bullet_lines_ratio:
                return "gopher_too_many_bullets"
        if self.max_ellipsis_lines_ratio:
            ell = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
            if ell / len(lines) > self.max_ellipsis_lines_ratio:
                return "gopher_too_many_end_ellipsis"
        if self.min_alpha_words_ratio and n:
            # over words, not punctuation tokens: the paper splits on whitespace, where
            # "time," is one alphabetic word (datatrove's spaCy tokens count "," against it)
            # str.isalpha runs in C; only the few mixed words (it's, abc123, 3.14) need a regex
            alpha = sum(map(str.isalpha, content))
            alpha += sum(1 for w in content if not w.isalpha() and _ALPHA.search(w))
            if alpha / n < self.min_alpha_words_ratio:
                return "gopher_below_alpha_threshold"
        if self.min_stop_words:
            stops = self.stop_words_ja if cjk else self.stop_words
            if len(stops.intersection(words)) < self.min_stop_words:
                return "gopher_enough_stop_words"
        return None


def _dup_count(items: list[str]) -> tuple[int, int]:
    """(duplicate elements, their characters): every occurrence after the first counts."""
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


def _has_repeat(st: TextStats, n: int) -> bool:
    if len(st.words) <= n:
        return False
    h = np.sort(st.ngram_hashes(n))
    return bool((h[1:] == h[:-1]).any())


def _greedy_dup_chars(h: np.ndarray, chars: np.ndarray, n: int, start: int) -> int:
    """The paper's count: scan left to right; a repeated n-gram counts and skips n words."""
    hs, cs = h.tolist(), chars.tolist()
    seen = set(hs[:start])
    total, i, m = 0, start, len(hs)
    while i < m:
        if hs[i] in seen:
            total += cs[i]
            i += n
        else:
            seen.add(hs[i])
            i += 1
    return total


class GopherRepetition(Filter):
    name = "gopher_repetition"

    def __init__(
        self,
        *,
        dup_line_frac: float | None = 0.3,
        dup_para_frac: float | None = 0.3,
        dup_line_char_frac: float | None = 0.2,
        dup_para_char_frac: float | None = 0.2,
        top_n_grams: Sequence[tuple[int, float]] = ((2, 0.2), (3, 0.18), (4, 0.16)),
        dup_n_grams: Sequence[tuple[int, float]] = (
            (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)),
        cjk_chars_per_word: float = 2.0,
        **kw,
    ) -> None:
        super().__init__(**kw)
        self.cjk_chars_per_word = cjk_chars_per_word
        self.dup_line_frac, self.dup_para_frac = dup_line_frac, dup_para_frac
        self.dup_line_char_frac, self.dup_para_char_frac = dup_line_char_frac, dup_para_char_frac
        self.top_n_grams = [(int(n), float(f)) for n, f in top_n_grams]
        self.dup_n_grams = [(int(n), float(f)) for n, f in dup_n_grams]

    def reason(self, doc: Doc) -> str | None:
        st = analyze(doc["text"])
        text = st.text
        size = len(text)
        if not size:
            return "empty"
        paras = PARAGRAPH.split(text.strip())
        dups, chars = _dup_count(paras)
        if self.dup_para_frac and dups / len(paras) > self.dup_para_frac:
            return "dup_para_frac"
        if self.dup_para_char_frac and chars / size > self.dup_para_char_frac:
            return "dup_para_char_frac"
        lines = [s for s in st.lines if s]
        if lines:
            dups, chars = _dup_count(lines)
            if self.dup_line_frac and dups / len(lines) > self.dup_line_frac:
                return "dup_line_frac"
            if self.dup_line_char_frac and chars / size > self.dup_line_char_frac:
                return "dup_line_char_frac"
        cjk = doc_language(doc) in CJK_LANGS
        return self._ngram_reason(st, size, 0 if cjk else 1, self.cjk_chars_per_word if cjk else 1)

    def _ngram_reason(self, st: TextStats, size: int, sep: int, scale: float) -> str | None:
        n_words = len(st.words)
        # A repeated n-gram contains a repeated (n-1)-gram: if the smallest n of each rule
        # family has no repeat, none of the family's rules can fire (clean prose: most docs).
        tops = not self.top_n_grams or _has_repeat(
            st, max(1, round(min(n for n, _ in self.top_n_grams) * scale)))
        dups = bool(self.dup_n_grams) and _has_repeat(
            st, max(1, round(min(n for n, _ in self.dup_n_grams) * scale)))
        for rule_n, frac in self.top_n_grams:
            n = max(1, round(rule_n * scale))
            if n_words < n:
                continue
            if not tops:  # all n-grams occur once: the "top" one is the first (Counter order)
                if st.ngram_chars(n, sep)[0] / size > frac:
                    return f"top_{rule_n}_gram"
                continue
            h = st.ngram_hashes(n)
            uniq, first, counts = np.unique(h, return_index=True, return_counts=True)
            top = counts.max()
            # ties: the n-gram seen first wins (what Counter.most_common does)
            pos = first[counts == top].min()
            if top * st.ngram_chars(n, sep)[pos] / size > frac:
                return f"top_{rule_n}_gram"
        for rule_n, frac in self.dup_n_grams if dups else ():
            n = max(1, round(rule_n * scale))
            if n_words < n:
                continue
            h = st.ngram_hashes(n)
            _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
            repeat = first[inverse] < np.arange(len(h))
            if not repeat.any():
                continue
            chars = st.ngram_chars(n, 0)
            if chars[repeat].sum() / size <= frac:  # upper bound of the greedy count
                continue
            start = int(np.argmax(repeat))
            if _greedy_dup_chars(h, chars, n, start) / size > frac:
                return f"duplicated_{rule_n}_n_grams"
        return None
