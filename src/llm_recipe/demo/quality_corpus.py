"""Generated low-quality "web text" for training and testing the model-based filters.

The hard cases for a quality model are the ones heuristic filters pass: text made of the
reference set's own vocabulary but not of its language. Kinds (all deterministic per seed):

  word_salad   the words (Japanese: 2-character pieces) of reference documents, shuffled
  splice       sentences from unrelated documents spliced mid-sentence (scraper / spinner junk)
  keyword      SEO-style keyword runs built from reference vocabulary
  fragment     menus, dates and counters typical of page chrome
"""

from __future__ import annotations

import random
import re

KINDS = ("word_salad", "splice", "keyword", "fragment")
_SENT = re.compile(r"(?<=[。.!?！？])\s*")
_CHROME = ["Home", "Next »", "« Prev", "Share", "ホーム", "次へ", "前へ", "コメント(0)", "Tweet",
           "2024/05/12", "閲覧数 1,204", "Page 3 of 17", "タグ:", "関連記事", "Archives", "PR"]


def _is_ja(text: str) -> bool:
    return sum(ord(c) > 0x3000 for c in text) > len(text) * 0.3


def _pieces(text: str) -> list[str]:
    return [text[i : i + 2] for i in range(0, len(text), 2)] if _is_ja(text) else text.split()


def _join(pieces: list[str], ja: bool) -> str:
    return ("" if ja else " ").join(pieces)


def low_quality_text(r: random.Random, reference: list[str], kind: str) -> str:
    src = r.choice(reference)
    ja = _is_ja(src)
    if kind == "word_salad":
        p = _pieces(src)
        r.shuffle(p)
        return _join(p, ja)
    if kind == "splice":
        sents = []
        for _ in range(r.randint(3, 6)):
            s = [x for x in _SENT.split(r.choice(reference)) if x]
            if s:
                one = r.choice(s)
                sents.append(one[: max(4, int(len(one) * r.uniform(0.3, 0.7)))])
        return _join(sents, ja)
    if kind == "keyword":
        vocab = [w for w in _pieces(src) if len(w) > 1] or ["keyword"]
        return "\n".join(_join(r.sample(vocab, min(len(vocab), r.randint(3, 6))), ja) for _ in range(r.randint(4, 8)))
    if kind == "fragment":
        return "\n".join(r.choice(_CHROME) if r.random() < 0.7 else _join(_pieces(src)[:3], ja)
                         for _ in range(r.randint(6, 14)))
    raise ValueError(f"unknown low-quality kind {kind!r} (choose from {', '.join(KINDS)})")


def low_quality_corpus(n: int, reference: list[str], seed: int = 0) -> list[str]:
    """`n` low-quality texts, kinds in rotation, built from `reference` texts."""
    if not reference:
        raise ValueError("low_quality_corpus needs reference texts to draw vocabulary from")
    r = random.Random(f"lowq-{seed}")
    return [low_quality_text(r, reference, KINDS[i % len(KINDS)]) for i in range(n)]
