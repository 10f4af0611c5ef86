"""Pointwise scoring with reward models: load, normalize, combine.

A reward model directory is a plain `*ForSequenceClassification` (num_labels=1) plus
`reward_model.json` (pooling and the reward mean/std over a reference set). Any HF reward model
without that file also works (last-token pooling, no normalization).

Normalized reward = (r - mean) / std, so rewards of different models are on one scale and can be
combined: `CombinedScorer([(helpful, 1.0), (harmless, 0.5)])` scores sum(w_i * normalized_i).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..files import read_json
from ..models.reward_io import (
    RM_INFO_FILE,
    encode,
    render_response,
    reward_format,
    score_token_ids,
)
from ..tokenizer.chat_formats import ChatFormat


class Scorer(Protocol):
    def score(self, prompts: Sequence, responses: Sequence[str], normalize: bool = True) -> np.ndarray: ...


class RewardScorer:
    def __init__(self, model, tokenizer, fmt: ChatFormat, *, pooling: str = "last", mean: float = 0.0,
                 std: float = 1.0, max_length: int | None = None, batch_size: int = 32, name: str = "rm"):
        self.model, self.tokenizer, self.fmt = model, tokenizer, fmt
        self.pooling, self.mean, self.std = pooling, mean, std
        self.max_length = max_length
        self.batch_size = batch_size
        self.name = name
        self.truncated = 0  # sequences cut from the left to fit max_length (counted, not hidden)

    @classmethod
    def load(cls, path: str | os.PathLike, dtype: str = "float32", chat_format: str | None = None,
             trust_remote_code: bool = False, device=None, **kw) -> RewardScorer:
        from transformers import AutoModelForSequenceClassification

        from ..models.loading import DTYPES, load_tokenizer

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such reward model directory")
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code)
        except OSError as e:
            raise FileNotFoundError(f"{path}: cannot load reward model ({str(e).splitlines()[0]})") from None
        if model.config.num_labels != 1:
            raise ValueError(f"{path}: a reward model has num_labels=1, this one has {model.config.num_labels}")
        if device is not None:
            model.to(device)
        tokenizer = load_tokenizer(path, trust_remote_code)
        info_path = path / RM_INFO_FILE
        info = read_json(info_path) if info_path.exists() else {}
        norm = info.get("normalization") or {}
        return cls(model, tokenizer, reward_format(tokenizer, chat_format), pooling=info.get("pooling", "last"),
                   mean=float(norm.get("mean", 0.0)), std=float(norm.get("std", 1.0)),
                   max_length=info.get("max_length"), name=path.name if path.name != "model" else path.parent.name,
                   **kw)

    def token_ids(self, prompts: Sequence, responses: Sequence[str]) -> list[list[int]]:
        texts = [render_response(self.fmt, self.tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
        ids = encode(self.tokenizer, texts)
        if self.max_length:
            long = [i for i, s in enumerate(ids) if len(s) > self.max_length]
            self.truncated += len(long)
            for i in long:  # keep the end: the reward is read at the last token
                ids[i] = ids[i][-self.max_length :]
        return ids

    def raw(self, prompts: Sequence, responses: Sequence[str]) -> np.ndarray:
        if len(prompts) == 0:
            return np.zeros(0)
        pad = self.tokenizer.pad_token_id
        return score_token_ids(self.model, self.token_ids(prompts, responses), pad, self.pooling, self.batch_size)

    def score(self, prompts: Sequence, responses: Sequence[str], normalize: bool = True) -> np.ndarray:
        r = self.raw(prompts, responses)
        return (r - self.mean) / self.std if normalize else r


class CombinedScorer:
    """Weighted sum of several scorers (e.g. helpfulness and harmlessness reward models)."""

    def __init__(self, parts: Sequence[tuple[Scorer, float]]):
        if not parts:
            raise ValueError("CombinedScorer needs at least one (scorer, weight)")
        self.parts = list(parts)

    def components(self, prompts: Sequence, responses: Sequence[str], normalize: bool = True) -> np.ndarray:
        """[n_scorers, n] scores, unweighted."""
        return np.stack([s.score(prompts, responses, normalize) for s, _ in self.parts])

    def score(self, prompts: Sequence, responses: Sequence[str], normalize: bool = True) -> np.ndarray:
        w = np.array([w for _, w in self.parts], dtype=np.float64)
        return w @ self.components(prompts, responses, normalize)


def load_scorer(refs: Sequence[tuple[str | os.PathLike, float]], **kw) -> Scorer:
    """One reward model, or a weighted combination of several: [(path, weight), ...]."""
    if not refs:
        raise ValueError("no reward model given")
    if len(refs) == 1 and refs[0][1] == 1.0:
        return RewardScorer.load(refs[0][0], **kw)
    return CombinedScorer([(RewardScorer.load(p, **kw), float(w)) for p, w in refs])


