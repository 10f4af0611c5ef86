"""Length bias: how long a model's answers are next to its reference's, and how much a reward
model's score follows length.

A reward model that scores long answers higher teaches the policy to be long-winded rather than
better (the length-bias problem of RLHF): a reward-length correlation near 1 over many answers of
several models says the RM mostly measures length. Length is in characters, the one unit that
means the same for every model's tokenizer and for Japanese and English text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mean_length(texts: Sequence[str]) -> float:
    return float(np.mean([len(t) for t in texts])) if texts else 0.0


def length_vs_reference(answers: Sequence[str], ref_answers: Sequence[str]) -> dict:
    m, r = mean_length(answers), mean_length(ref_answers)
    return {"mean_chars": m, "reference_mean_chars": r, "ratio": m / r if r else None}


def reward_length_correlation(scores: Sequence[float], texts: Sequence[str]) -> dict:
    """Pearson and Spearman correlation of reward with answer length (None when either is constant)."""
    from scipy.stats import pearsonr, spearmanr

    s = np.asarray(scores, dtype=np.float64)
    n = np.array([len(t) for t in texts], dtype=np.float64)
    if len(s) < 3 or s.std() == 0 or n.std() == 0:
        return {"n": len(s), "pearson": None, "spearman": None}
    return {"n": len(s), "pearson": float(pearsonr(s, n)[0]), "spearman": float(spearmanr(s, n)[0])}
