"""Exact dedup: a hash of the normalized content; the first document of each group is kept.

Normalization decides what "the same" means: `none` hashes the raw text, `whitespace`
ignores leading/trailing space and whitespace runs, `text` also applies NFKC and lowercasing
(the same normalization fuzzy dedup shingles). xxh3-128 is the default digest (fast, 128 bits
make accidental collisions irrelevant); SHA-1 / MD5 for compatibility with external lists.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import xxhash

from .shingles import normalize_text

HashName = Literal["xxh128", "sha1", "md5"]
Normalize = Literal["none", "whitespace", "text"]

_HASHES: dict[str, Callable[[bytes], bytes]] = {
    "xxh128": lambda b: xxhash.xxh3_128_digest(b),
    "sha1": lambda b: hashlib.sha1(b, usedforsecurity=False).digest(),
    "md5": lambda b: hashlib.md5(b, usedforsecurity=False).digest(),
}


def content_digest(text: str, algo: HashName = "xxh128", normalize: Normalize = "whitespace") -> bytes:
    if algo not in _HASHES:
        raise ValueError(f"unknown hash '{algo}' (choose from {', '.join(_HASHES)})")
    if normalize == "whitespace":
        text = " ".join(text.split())
    elif normalize == "text":
        text = normalize_text(text)
    elif normalize != "none":
        raise ValueError(f"unknown normalization '{normalize}' (none, whitespace, text)")
    return _HASHES[algo](text.encode("utf-8", "surrogatepass"))


@dataclass
class ExactDedup:
    """Streaming: `add(digests)` returns, per document, the index of the first one like it."""

    first: dict[bytes, int] = field(default_factory=dict)
    group_size: Counter = field(default_factory=Counter)  # first index -> group size (>= 2)
    n_docs: int = 0

    def add(self, digests: Iterable[bytes]) -> np.ndarray:
        reps = []
        for d in digests:
            rep = self.first.setdefault(d, self.n_docs)
            if rep != self.n_docs:
                self.group_size[rep] += 1
            reps.append(rep)
            self.n_docs += 1
        return np.array(reps, dtype=np.int64)

    def stats(self) -> dict[str, int]:
        removed = sum(self.group_size.values())
        return {"docs": self.n_docs, "groups": len(self.group_size), "removed": removed}


def exact_dedup(
    texts: Iterable[str], algo: HashName = "xxh128", normalize: Normalize = "whitespace"
) -> tuple[np.ndarray, dict[str, int]]:
    """(rep, stats): rep[i] is the index of the first document equal to document i."""
    dd = ExactDedup()
    rep = dd.add(content_digest(t, algo, normalize) for t in texts)
    return rep, dd.stats()
