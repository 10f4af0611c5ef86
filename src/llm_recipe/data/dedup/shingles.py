"""Dedup text keys: normalization and vectorized n-gram shingle hashing.

Character n-grams are the default because they need no word boundaries, so Japanese (and
Chinese, Thai ...) written without spaces shingles as well as English. Word n-grams are
selectable for space-separated text.

Speed matters here: fuzzy dedup hashes every n-gram of every document. Instead of calling a
hash function once per shingle from Python, a whole batch is laid out as one array of symbols
(Unicode code points for chars, xxhash ids for words), documents separated by n-1 sentinel
zeros, and the n-gram hashes of all positions are computed at once as a polynomial over the
symbols (n numpy passes), then mixed with the murmur3 64-bit finalizer. Positions whose
n-gram crosses into the separator are discarded; a document shorter than n gets a single
shingle (itself, padded with sentinels) so it is still comparable.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np
import xxhash

_PUNCT = re.compile(r"[^\w\s]")
_WORD = re.compile(r"\w+")

# Odd 64-bit multiplier of the polynomial n-gram hash (any large odd constant works: the
# murmur finalizer that follows does the mixing; the polynomial only has to be injective-ish).
_POLY = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S32 = np.uint64(32)


def normalize_text(text: str, lowercase: bool = True, strip_punct: bool = False) -> str:
    """The text a dedup key is computed from: NFKC, (lowercased,) whitespace runs -> one space.

    NFKC folds full-width / half-width variants (`ＡＢＣ` = `ABC`, `ｶﾞ` = `ガ`) so they count as
    the same text. NUL is removed because it is the shingler's document separator.
    """
    text = unicodedata.normalize("NFKC", text).replace("\0", "")
    if lowercase:
        text = text.lower()
    if strip_punct:
        text = _PUNCT.sub(" ", text)
    return " ".join(text.split())  # str.split() knows every Unicode space, faster than a regex


def fmix64(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finalizer (in place on a uint64 array): full avalanche of every bit."""
    x ^= x >> _S33
    x *= _M1
    x ^= x >> _S33
    x *= _M2
    x ^= x >> _S33
    return x


@dataclass(frozen=True)
class ShingleSpec:
    kind: Literal["char", "word"] = "char"
    n: int = 5
    lowercase: bool = True
    strip_punct: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("char", "word"):
            raise ValueError(f"shingle kind must be 'char' or 'word', got {self.kind!r}")
        if self.n < 1:
            raise ValueError(f"shingle size must be >= 1, got {self.n}")


@dataclass
class ShingleBatch:
    """Shingle hashes of a batch: doc i owns `hashes[offsets[i]:offsets[i + 1]]` (not unique)."""

    hashes: np.ndarray  # uint32
    offsets: np.ndarray  # int64, len = n_docs + 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def doc(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]


def _symbols(texts: list[str], spec: ShingleSpec) -> tuple[np.ndarray, np.ndarray]:
    """One uint64 symbol array for the batch with n-1 zero sentinels after every document."""
    pad = spec.n - 1
    norm = [normalize_text(t, spec.lowercase, spec.strip_punct) for t in texts]
    if spec.kind == "char":
        sep = "\0" * pad
        joined = sep.join(norm) + sep
        # UTF-32 gives one fixed-width unit per code point, so string length == array length.
        syms = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        lengths = np.fromiter(map(len, norm), dtype=np.int64, count=len(norm))
        return syms.astype(np.uint64), lengths
    ids: list[int] = []
    lengths = np.empty(len(norm), dtype=np.int64)
    zeros = [0] * pad
    h = xxhash.xxh3_64_intdigest
    for i, t in enumerate(norm):
        words = _WORD.findall(t)
        lengths[i] = len(words)
        # | 1 keeps word ids away from the sentinel value 0.
        ids.extend(h(w.encode("utf-8")) | 1 for w in words)
        ids.extend(zeros)
    return np.array(ids, dtype=np.uint64), lengths


def shingle_hashes(texts: list[str], spec: ShingleSpec = ShingleSpec(), chunk: int = 65536) -> ShingleBatch:
    """32-bit hashes of every n-gram of every text (vectorized over the whole batch)."""
    n = spec.n
    syms, lengths = _symbols(texts, spec)
    total = len(syms)
    if total == 0 or len(texts) == 0:
        return ShingleBatch(np.zeros(0, np.uint32), np.zeros(len(texts) + 1, np.int64))
    n_pos = total - n + 1
    h32 = np.empty(n_pos, dtype=np.uint32)
    for lo in range(0, n_pos, chunk):
        # cache-sized chunks: the n polynomial passes and the mixer reuse data in L2
        hi = min(lo + chunk, n_pos)
        h = syms[lo:hi].copy()
        for k in range(1, n):
            h *= _POLY
            h += syms[lo + k : hi + k]
        h32[lo:hi] = fmix64(h) >> _S32
    # keep the n-grams fully inside a document (a non-empty document shorter than n keeps
    # one, padded with sentinels); drop the n-1 positions per document that reach past it
    counts = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    starts = np.concatenate([[0], np.cumsum(lengths + n - 1)[:-1]])
    n_bad = (lengths + n - 1) - counts
    bad = np.repeat(starts + counts - np.cumsum(np.concatenate([[0], n_bad[:-1]])), n_bad)
    bad += np.arange(len(bad))
    valid = np.ones(total, dtype=bool)
    valid[bad] = False
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return ShingleBatch(h32[valid[:n_pos]], offsets)


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique for 1-D arrays via sort + compare (faster than numpy 2's hash-based unique here)."""
    if len(x) < 2:
        return np.array(x)
    s = np.sort(x)
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted, unique arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    if len(a) > len(b):
        a, b = b, a
    if len(a) == 0:
        return 0.0
    pos = np.searchsorted(b, a)
    pos[pos == len(b)] = 0
    inter = int(np.count_nonzero(b[pos] == a))
    return inter / (len(a) + len(b) - inter)
