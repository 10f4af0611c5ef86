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

import numpy as np

from ...config.curate import GopherQualityConfig, GopherRepetitionConfig
from ..pipeline import Doc, Filter
from .text_stats import CJK_LANGS, PARAGRAPH, TextStats, analyze, doc_language

STOP_WORDS_EN = ("the", "be", "to", "of", "and", "that", "have", "with")
STOP_WORDS_JA = ("の", "に", "は", "を", "が", "で", "と", "て", "た", "も")
_ALPHA = re.compile(r"[^\W\d_]")


class GopherQuality(Filter):
    name = "gopher_quality"
    config_class = GopherQualityConfig
    stop_words, stop_words_ja = frozenset(STOP_WORDS_EN), frozenset(STOP_WORDS_JA)

    def reason(self, doc: Doc) -> str | None:
        c = self.config
        st = analyze(doc["text"])
        cjk = doc_language(doc) in CJK_LANGS
        words = st.words
        n_words = len(words)
        if n_words == 0:
            return "gopher_short_doc"
        content = st.content_words
        n = len(content)
        if c.min_doc_words and n < c.min_doc_words:
            return "gopher_short_doc"
        if c.max_doc_words and n > c.max_doc_words:
            return "gopher_long_doc"
        if not cjk and n:
            avg = sum(map(len, content)) / n
            if c.min_avg_word_length and avg < c.min_avg_word_length:
                return "gopher_below_avg_threshold"
            if c.max_avg_word_length and avg > c.max_avg_word_length:
                return "gopher_above_avg_threshold"
        text = st.text
        if c.max_symbol_word_ratio:
            if text.count("#") / n_words > c.max_symbol_word_ratio:
                return "gopher_too_many_hashes"
            if (text.count("...") + text.count("…")) / n_words > c.max_symbol_word_ratio:
                return "gopher_too_many_ellipsis"
        lines = st.lines or [""]
        if c.max_bullet_lines_ratio:
            bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
            if bullets / len(lines) > c.max_bullet_lines_ratio:
                return "gopher_too_many_bullets"
        if c.max_ellipsis_lines_ratio:
            ell = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
            if ell / len(lines) > c.max_ellipsis_lines_ratio:
                return "gopher_too_many_end_ellipsis"
        if c.min_alpha_words_ratio and n:
            # over words, not punctuation tokens: the paper splits on whitespace, where
            # "time," is one alphabetic word (datatrove's spaCy tokens count "," against it)
            # str.isalpha runs in C; only the few mixed words (it's, abc123, 3.14) need a regex
            alpha = sum(map(str.isalpha, content))
            alpha += sum(1 for w in content if not w.isalpha() and _ALPHA.search(w))
            if alpha / n < c.min_alpha_words_ratio:
                return "gopher_below_alpha_threshold"
        if c.min_stop_words:
            stops = self.stop_words_ja if cjk else self.stop_words
            if len(stops.intersection(words)) < c.min_stop_words:
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
    config_class = GopherRepetitionConfig

    def reason(self, doc: Doc) -> str | None:
        c = self.config
        st = analyze(doc["text"])
        text = st.text
        size = len(text)
        if not size:
            return "empty"
        paras = PARAGRAPH.split(text.strip())
        dups, chars = _dup_count(paras)
        if c.dup_para_frac and dups / len(paras) > c.dup_para_frac:
            return "dup_para_frac"
        if c.dup_para_char_frac and chars / size > c.dup_para_char_frac:
            return "dup_para_char_frac"
        lines = [s for s in st.lines if s]
        if lines:
            dups, chars = _dup_count(lines)
            if c.dup_line_frac and dups / len(lines) > c.dup_line_frac:
                return "dup_line_frac"
            if c.dup_line_char_frac and chars / size > c.dup_line_char_frac:
                return "dup_line_char_frac"
        cjk = doc_language(doc) in CJK_LANGS
        return self._ngram_reason(st, size, 0 if cjk else 1, c.cjk_chars_per_word if cjk else 1)

    def _ngram_reason(self, st: TextStats, size: int, sep: int, scale: float) -> str | None:
        c = self.config
        n_words = len(st.words)
        # A repeated n-gram contains a repeated (n-1)-gram: if the smallest n of each rule
        # family has no repeat, none of the family's rules can fire (clean prose: most docs).
        tops = not c.top_n_grams or _has_repeat(
            st, max(1, round(min(n for n, _ in c.top_n_grams) * scale)))
        dups = bool(c.dup_n_grams) and _has_repeat(
            st, max(1, round(min(n for n, _ in c.dup_n_grams) * scale)))
        for rule_n, frac in c.top_n_grams:
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
        for rule_n, frac in c.dup_n_grams if dups else ():
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
