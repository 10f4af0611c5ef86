"""Cheap per-document heuristics: length, menu-like short lines, symbol/digit ratios, hiragana.

Each is its own `Filter` with its own reason code, so stats say exactly which rule removed
what. All counts come from the shared `analyze(text)` (one pass per property, cached).

* `MinLength`     `too_short`: fewer than `min_tokens` tokens (fallback count, or a HF
                  tokenizer) or fewer than `min_chars` non-space characters.
* `ShortLines`    `short_lines`: navigation menus / link lists. A line is short when it has
                  fewer than `min_line_chars` characters and does not end a sentence
                  (。．.!?！？」』 etc.), so short Japanese sentences are not counted. The rule
                  (FineWeb: lines of <= 30 chars, share > 0.67) needs at least `min_lines`
                  non-empty lines: a one-line doc cannot be a menu.
* `CharRatios`    `symbol_ratio` / `digit_ratio`: share of non-space characters that are
                  neither letters nor digits (punctuation, symbols, emoji), and of digits
                  (`!!!!!買って!!!! 5000円→500円!!!!` fails both).
* `HiraganaShare` `low_hiragana`: Japanese prose is ~30-50 % hiragana; keyword-stuffed SEO
                  pages, tables and lists of kanji/katakana are not (Swallow corpus rule,
                  share < 0.2 of non-space chars). Applies to docs the language step tagged
                  `ja`, or, without that tag, to docs that contain kana.
"""

from __future__ import annotations

from ...config.curate import CharRatiosConfig, HiraganaConfig, MinLengthConfig, ShortLinesConfig
from ..pipeline import Doc, Filter
from ..tokens import TokenCounter, make_counter
from .text_stats import analyze, doc_language

SENTENCE_END = tuple("。．.!?！？」』）)\"'”’:：")


class MinLength(Filter):
    name = "min_length"
    config_class = MinLengthConfig

    def __init__(self, config: MinLengthConfig | None = None, /, **kw) -> None:
        super().__init__(config, **kw)
        self.counter: TokenCounter = make_counter(self.config.tokenizer)
        self._fallback = type(self.counter) is TokenCounter

    def reason(self, doc: Doc) -> str | None:
        c = self.config
        st = analyze(doc["text"])
        if c.min_chars and st.n_nonspace < c.min_chars:
            return "too_short"
        if c.min_tokens:
            n = len(st.words) if self._fallback else self.counter.count(st.text)
            if n < c.min_tokens:
                return "too_short"
        return None


class ShortLines(Filter):
    name = "short_lines"
    config_class = ShortLinesConfig

    def reason(self, doc: Doc) -> str | None:
        c = self.config
        lines = [s for s in (x.strip() for x in analyze(doc["text"]).lines) if s]
        if len(lines) < c.min_lines:
            return None
        short = sum(1 for s in lines if len(s) < c.min_line_chars and not s.endswith(SENTENCE_END))
        return "short_lines" if short / len(lines) > c.max_short_line_share else None


class CharRatios(Filter):
    name = "char_ratios"
    config_class = CharRatiosConfig

    def reason(self, doc: Doc) -> str | None:
        c = self.config
        st = analyze(doc["text"])
        total = st.n_nonspace
        if not total:
            return "symbol_ratio"
        if c.max_symbol_ratio is not None and (total - st.n_letter_or_digit) / total > c.max_symbol_ratio:
            return "symbol_ratio"
        if c.max_digit_ratio is not None and st.n_digits / total > c.max_digit_ratio:
            return "digit_ratio"
        return None


class HiraganaShare(Filter):
    name = "hiragana_share"
    config_class = HiraganaConfig

    def reason(self, doc: Doc) -> str | None:
        st = analyze(doc["text"])
        lang = doc_language(doc)
        if lang is None:
            if not any("\u3040" <= c <= "\u30ff" for c in st.text):
                return None
        elif lang != "ja":
            return None
        return "low_hiragana" if st.n_hiragana / max(st.n_nonspace, 1) < self.config.min_share else None
