"""Counting "tokens" and "words" in mixed Japanese / English text.

Fallback token count (no tokenizer given): every CJK character (kanji, kana, hangul) is one
token and every other whitespace- or punctuation-delimited run is one token:
    "東京は晴れ" -> 5,   "Tokyo is sunny." -> 4 (Tokyo, is, sunny, .),   "03-1234-5678" -> 1
Japanese has no spaces, and a character is close to what a BPE vocabulary of a small model
spends per kana/kanji, so this is a reasonable budget unit without a tokenizer. With
`HFTokenCounter(path)` counts are exact tokenizer ids (no special tokens).

`words(text)` is the same split as a list: the "words" the Gopher rules count.
"""

from __future__ import annotations

import os
import re
from functools import cached_property

# Hiragana, katakana (+ half-width), CJK ideographs (+ ext A, compat), hangul syllables.
CJK_CHARS = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\uac00-\ud7af"
# An email | a number with separators (1,000  3.14  03-1234-5678  12:30) | one CJK char |
# a word (letters/digits, inner apostrophes) | a run of other symbols. The first two keep
# what word tokenizers (spaCy, NLTK) keep whole from counting as many non-alphabetic words.
_TOKEN_RE = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\d+(?:[-.,:/]\d+)+|"
    f"[{CJK_CHARS}]|[^\\W{CJK_CHARS}]+(?:['\u2019][^\\W{CJK_CHARS}]+)*|[^\\w\\s]+"
)


def words(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


class TokenCounter:
    """Fallback counter (see module docstring). Picklable, stateless."""

    name = "fallback:cjk-char+word"

    def count(self, text: str) -> int:
        return len(_TOKEN_RE.findall(text))

    def truncate(self, text: str, n: int) -> str:
        """The longest prefix of `text` holding exactly `min(n, count(text))` tokens."""
        if n <= 0:
            return ""
        end = 0
        for i, m in enumerate(_TOKEN_RE.finditer(text), start=1):
            end = m.end()
            if i == n:
                break
        return text[:end]


class HFTokenCounter(TokenCounter):
    """Counts with a Hugging Face tokenizer loaded from a local directory (never downloaded)."""

    def __init__(self, path: str) -> None:
        if not os.path.isdir(path):  # here, not at the first count deep inside a run
            raise FileNotFoundError(f"{path}: no such tokenizer folder (the `tokenizer:` of curation: a local "
                                    "Hugging Face tokenizer directory, or unset for the built-in count)")
        self.path = str(path)
        self.name = f"hf:{self.path}"

    @cached_property
    def _tok(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.path, local_files_only=True)

    def __getstate__(self) -> dict:
        return {"path": self.path, "name": self.name}  # workers reload the tokenizer lazily

    def count(self, text: str) -> int:
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, n: int) -> str:
        """Cut at the n-th token's end offset; re-check, since re-tokenizing can merge."""
        if n <= 0:
            return ""
        enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) <= n:
            return text
        cut = text[: offsets[n - 1][1]]
        while cut and self.count(cut) > n:
            cut = cut[:-1]
        return cut


def make_counter(tokenizer: str | None) -> TokenCounter:
    return HFTokenCounter(tokenizer) if tokenizer else TokenCounter()
