"""Reference-based text similarity for the rule-based labeler: BLEU and ROUGE.

BLEU is sacrebleu's sentence BLEU (the standard implementation; exp smoothing). Japanese has no
spaces, so text containing Japanese is tokenized per character ('char'), other text with the
standard '13a' tokenizer.

ROUGE-N and ROUGE-L (F1) are implemented here following Lin (2004), because the usual package
(`rouge-score`) drops every non-ASCII character and so scores Japanese as empty. Tokens:
lowercased ASCII word runs, and single characters for other word characters (kana, kanji, ...);
punctuation is dropped.
"""

from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"[a-z0-9]+|[^\W_a-z0-9]")  # ASCII words, or one other word character


def has_japanese(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)


def rouge_tokens(text: str) -> list[str]:
    """'Tokyo is big.' -> ['tokyo', 'is', 'big']; '東京です' -> ['東', '京', 'で', 'す']."""
    return _TOKEN.findall(text.lower())


def _f1(overlap: int, n_hyp: int, n_ref: int) -> float:
    if overlap == 0 or n_hyp == 0 or n_ref == 0:
        return 0.0
    p, r = overlap / n_hyp, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge_n(hypothesis: str, reference: str, n: int = 1) -> float:
    """ROUGE-N F1: clipped n-gram overlap between hypothesis and reference."""
    h, r = rouge_tokens(hypothesis), rouge_tokens(reference)
    hg = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
    rg = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
    return _f1(sum((hg & rg).values()), sum(hg.values()), sum(rg.values()))


def lcs_length(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1: longest common subsequence over hypothesis and reference lengths."""
    h, r = rouge_tokens(hypothesis), rouge_tokens(reference)
    return _f1(lcs_length(h, r), len(h), len(r))


def bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU in [0, 100] (sacrebleu)."""
    import sacrebleu

    tokenize = "char" if has_japanese(reference) or has_japanese(hypothesis) else "13a"
    return float(sacrebleu.sentence_bleu(hypothesis, [reference], tokenize=tokenize).score)
