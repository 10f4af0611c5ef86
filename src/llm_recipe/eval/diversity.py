"""Diversity of a model's answers, to catch mode collapse (RL and DPO can make every answer the same).

    distinct_n(texts, n)   distinct n-grams / all n-grams over the answers (higher: more diverse)
    self_bleu(texts)       mean BLEU of each answer against all the others (higher: more alike)

Tokens are those of `preference.text_metrics` (ASCII words; one token per Japanese character), so
Japanese and English answers are measured alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..preference.text_metrics import has_japanese, rouge_tokens


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    grams = [tuple(toks[i : i + n]) for t in texts for toks in [rouge_tokens(t)] for i in range(len(toks) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def self_bleu(texts: Sequence[str]) -> float | None:
    """Mean sentence BLEU (0-100, sacrebleu) of each non-empty answer against the others."""
    import sacrebleu

    kept = [t for t in texts if t.strip()]
    if len(kept) < 2:
        return None
    scores = []
    for i, hyp in enumerate(kept):
        refs = kept[:i] + kept[i + 1 :]
        tokenize = "char" if has_japanese(hyp) or any(has_japanese(r) for r in refs) else "13a"
        scores.append(sacrebleu.sentence_bleu(hyp, refs, tokenize=tokenize).score)
    return sum(scores) / len(scores)


def diversity(texts: Sequence[str]) -> dict:
    return {"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2), "self_bleu": self_bleu(texts),
            "n": len(texts)}
