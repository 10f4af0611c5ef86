"""One reward abstraction for every consumer: PPO / GRPO / RLOO / REINFORCE++, online DPO, Best-of-N
and `prefs label` all score with a `Rewards` built from a `rewards:` list (`config.rewards`).

    build_rewards(sources, rm_dir=None, dtype=..., device=...)   -> Rewards
    legacy_sources(refs, rules)                                  the sources a section without
                                                                 `rewards:` means (the reward models
                                                                 it is given, else its rules)
    source_files(sources) / source_models(sources, rm_dir)       the files of `file.py:function` sources
                                                                 and the reward models the sources load
                                                                 (what a run key hashes)
    Rewards.score(prompts, completions, columns=None, completion_ids=None) -> float array
        the weighted sum over the sources that rewarded each completion; NaN where none did
        (a completion with no reward: the consumer counts it and leaves it out)
    Rewards.last                                                 the last batch, per source
    Rewards.stats(batch)                                         {"rewards/NAME/mean", ".../std",
                                                                 ".../none", "rewards/unscored"}

Each source is a callable with TRL's reward-function signature (`prompts`, `completions`, the
dataset's columns as keyword arguments) returning one float or None per completion: a built-in
verifier, a user's function, a reward server, a reward model, a rule. Reward models give their
normalized score; the others their own value. TRL's combination: a source's None leaves it out of
that completion's sum (nansum); only when every source is None has the completion no reward.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import RuleConfig
from ..config.rewards import RMSource, RuleSource, source_name
from ..infer.reward import RewardScorer
from ..preference.records import InvalidRecord
from ..preference.rules import rule_value
from .function import RewardFunctionError, call_reward, check_rewards, load_function
from .http import HTTPReward
from .text import completion_text, prompt_text
from .verifiers import verifier


@dataclass
class Source:
    name: str
    weight: float
    fn: Callable  # TRL signature
    conversational: bool = False
    args: dict = field(default_factory=dict)


@dataclass
class RewardBatch:
    """One scored batch: the combined reward (NaN: no source rewarded it) and each source's values."""

    total: np.ndarray
    by_source: dict[str, list[float | None]]

    @property
    def unscored(self) -> np.ndarray:
        return np.isnan(self.total)


def _rm_fn(scorer: RewardScorer, normalize: bool) -> Callable:
    def rm(prompts, completions, **kwargs) -> list[float]:
        return [float(x) for x in scorer.score([prompt_text(p) if not isinstance(p, str) else p for p in prompts],
                                               [completion_text(c) for c in completions], normalize)]

    return rm


def _rule_fn(s: RuleSource) -> Callable:
    rule = RuleConfig(kind=s.rule, value=s.value, min_chars=s.min_chars, max_chars=s.max_chars)

    def rule_reward(completions, reference=None, **kwargs) -> list[float | None]:
        refs = reference if reference is not None else [None] * len(completions)
        out = []
        for c, ref in zip(completions, refs, strict=True):
            try:
                out.append(rule_value(rule, completion_text(c), ref))
            except InvalidRecord:  # BLEU / ROUGE on a row without a reference: no reward here
                out.append(None)
        return out

    return rule_reward


def _source(s, rm_dir, dtype: str, device) -> Source:
    name, args = source_name(s), dict(getattr(s, "args", {}) or {})
    if s.kind == "verifier":
        return Source(name, s.weight, verifier(s.verifier, **args))
    if s.kind == "function":
        return Source(name, s.weight, load_function(s.function), s.conversational, args)
    if s.kind == "http":
        return Source(name, s.weight, HTTPReward(s.url, timeout_s=s.timeout_s, retries=s.retries, label_key=s.label_key,
                                                 score_key=s.score_key, batch_size=s.batch_size,
                                                 api_key_env=s.api_key_env))
    if s.kind == "rm":
        path = s.path or rm_dir
        if path is None:
            raise ValueError("rewards: a {kind: rm} source without `path` needs the recipe's reward model (an rm: section)")
        return Source(name, s.weight, _rm_fn(RewardScorer.load(path, dtype=dtype, device=device), s.normalize))
    return Source(name, s.weight, _rule_fn(s))


class Rewards:
    """Several reward sources combined with weights (see the module docstring)."""

    def __init__(self, sources: Sequence[Source]):
        if not sources:
            raise ValueError("rewards: give at least one reward source")
        self.sources = list(sources)
        self.last: RewardBatch | None = None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def batch(self, prompts: Sequence, completions: Sequence[str], columns: dict[str, Sequence] | None = None,
              completion_ids: Sequence[Sequence[int]] | None = None) -> RewardBatch:
        n = len(completions)
        by_source: dict[str, list[float | None]] = {}
        total, seen = np.zeros(n), np.zeros(n, dtype=bool)
        for s in self.sources:
            vals = self._call(s, prompts, completions, columns or {}, completion_ids)
            by_source[s.name] = vals
            for i, v in enumerate(vals):
                if v is not None:
                    total[i] += s.weight * v
                    seen[i] = True
        total[~seen] = np.nan
        self.last = RewardBatch(total, by_source)
        return self.last

    def _call(self, s: Source, prompts, completions, columns, completion_ids) -> list[float | None]:
        cols = {k: v for k, v in columns.items() if k not in s.args and k not in ("prompt", "prompts", "completions")}
        ps, cs = list(prompts), list(completions)
        if s.conversational:
            ps = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in ps]
            cs = [[{"role": "assistant", "content": c}] for c in cs]
        if isinstance(s.fn, HTTPReward):
            return s.fn(ps, cs, **cols)
        fn = s.fn
        if s.args:
            def fn(*a, _f=s.fn, **kw):
                return _f(*a, **{**kw, **s.args})
        extras = {"completion_ids": [list(x) for x in completion_ids]} if completion_ids is not None else None
        return call_reward(fn, s.name, ps, cs, cols, extras)

    def score(self, prompts: Sequence, responses: Sequence[str], normalize: bool = True,
              columns: dict[str, Sequence] | None = None, completion_ids=None) -> np.ndarray:
        """The combined reward per completion (NaN: no source rewarded it). `normalize` is the
        `Scorer` protocol's; reward-model sources decide it in their config."""
        return self.batch(prompts, responses, columns, completion_ids).total

    def stats(self, batch: RewardBatch | None = None, prefix: str = "rewards") -> dict[str, float]:
        """Mean, std and share of None of each source, and the share of completions no source rewarded."""
        b = batch or self.last
        if b is None:
            return {}
        out: dict[str, float] = {}
        for name, vals in b.by_source.items():
            got = np.array([v for v in vals if v is not None], dtype=np.float64)
            out[f"{prefix}/{name}/mean"] = float(got.mean()) if len(got) else float("nan")
            out[f"{prefix}/{name}/std"] = float(got.std()) if len(got) else float("nan")
            out[f"{prefix}/{name}/none"] = 1.0 - len(got) / max(len(vals), 1)
        out[f"{prefix}/unscored"] = float(b.unscored.mean()) if len(b.total) else 0.0
        return out

    def plot_keys(self, prefix: str = "rewards") -> tuple[str, ...]:
        return tuple(f"{prefix}/{n}/mean" for n in self.names)


def build_rewards(sources: Sequence, rm_dir: str | os.PathLike | None = None, dtype: str = "float32",
                  device=None) -> Rewards:
    """A `Rewards` from config sources (`config.rewards`)."""
    return Rewards([_source(s, rm_dir, dtype, device) for s in sources])


def label_rewards(lc, compute, rm_dir: str | os.PathLike | None = None) -> Rewards | None:
    """The reward sources of a `label:` section with labeler 'rewards' (else None: another labeler)."""
    if lc.labeler != "rewards":
        return None
    if not lc.rewards:
        raise ValueError("labeler 'rewards' needs label.rewards (a list of reward sources)")
    from ..models.placement import compute_device

    return build_rewards(lc.rewards, rm_dir, dtype=compute.dtype, device=compute_device(compute))


def legacy_sources(refs: Sequence, rules: Sequence) -> list:
    """What a section without `rewards:` means: the reward models it is given (`RunContext.reward_model_refs`:
    --rm, its reward_models, the run's reward model), else its rules."""
    if refs:
        return [RMSource(kind="rm", path=str(r.path), weight=r.weight) for r in refs]
    return [RuleSource(kind="rule", rule=r.kind, value=r.value, min_chars=r.min_chars, max_chars=r.max_chars,
                       weight=r.weight, name=f"rule:{r.kind}:{i}" if len(rules) > 1 else None)
            for i, r in enumerate(rules)]


def source_files(sources: Sequence) -> list[str]:
    """The Python files of `file.py:function` sources (a changed reward function is another run)."""
    files = [s.function.rpartition(":")[0] for s in sources if s.kind == "function"]
    return [f for f in files if f.endswith(".py") or "/" in f]


def source_models(sources: Sequence, rm_dir: str | os.PathLike | None) -> list[str]:
    """The reward models the `{kind: rm}` sources load (a source without a path: `rm_dir`)."""
    return [str(s.path or rm_dir) for s in sources if s.kind == "rm" and (s.path or rm_dir)]


__all__ = ["RewardBatch", "RewardFunctionError", "Rewards", "Source", "build_rewards", "check_rewards",
           "legacy_sources", "source_files", "source_models"]
