"""Rule rewards for RL tests: the same `score(prompts, responses)` interface as the reward models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class StartsWithScorer:
    """Rule reward: `reward` if the response starts with `prefix`, else 0 (the style target)."""

    def __init__(self, prefix: str, reward: float = 1.0):
        self.prefix, self.reward = prefix, reward

    def score(self, prompts: Sequence, responses: Sequence[str], normalize: bool = True) -> np.ndarray:
        return np.array([self.reward * r.lstrip().startswith(self.prefix) for r in responses], dtype=np.float64)


class LengthScorer:
    """A reward that rewards length alone (`per_char` per character): the reward-hacking probe."""

    def __init__(self, per_char: float = 0.05):
        self.per_char = per_char

    def score(self, prompts: Sequence, responses: Sequence[str], normalize: bool = True) -> np.ndarray:
        return np.array([self.per_char * len(r) for r in responses], dtype=np.float64)
