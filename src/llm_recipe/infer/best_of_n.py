"""Best-of-N: sample N responses per prompt, score them with reward model(s), return the best.

Cost and latency are reported, because they are the price of Best-of-N: tokens generated are
~N x those of one sample, and when the N samples decode together the answer is ready only when
the slowest finishes, so the latency is the max of the N (plus scoring). Each sample's latency
is the time from the start of decoding to the step that produced its last token, taken from a
forward hook on the policy (one forward per decoding step).

Sample j of prompt i is drawn with the per-prompt seed and row j, so N=1 returns exactly sample
0 of any larger N: comparing N=1 with N>1 compares the same first draw with the best of more.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..config import SamplingConfig
from ..models.reward_io import reward_format
from .generate import generate_chat
from .reward import Scorer


@dataclass
class BoNSample:
    text: str
    reward: float | None  # None: no reward source rewarded it
    tokens: int  # generated tokens, the stop token included
    latency_s: float  # decoding start -> this sample's last token
    finish_reason: str


@dataclass
class BoNItem:
    prompt: str | list[dict]
    best_index: int
    best_text: str
    best_reward: float | None
    samples: list[BoNSample]
    generate_s: float  # wall time of decoding all N (= the max sample latency, plus overhead)
    score_s: float


@dataclass
class BoNReport:
    n: int
    items: list[BoNItem] = field(default_factory=list)

    def summary(self) -> dict:
        its = self.items
        lat = np.array([s.latency_s for it in its for s in it.samples])
        max_lat = np.array([max(s.latency_s for s in it.samples) for it in its])
        tokens = sum(s.tokens for it in its for s in it.samples)
        first_tokens = sum(it.samples[0].tokens for it in its)
        return {
            "n": self.n,
            "prompts": len(its),
            "mean_best_reward": _mean([it.best_reward for it in its]),
            # What N=1 would have returned (sample 0, same seed): the baseline Best-of-N must beat.
            "mean_first_sample_reward": _mean([it.samples[0].reward for it in its]),
            "mean_sample_reward": _mean([s.reward for it in its for s in it.samples]),
            "unscored_samples": sum(s.reward is None for it in its for s in it.samples),
            "tokens_generated": tokens,
            "tokens_first_sample": first_tokens,
            "token_cost_ratio": tokens / max(first_tokens, 1),
            "sample_latency_s": {"mean": float(lat.mean()), "p50": float(np.percentile(lat, 50)),
                                 "p90": float(np.percentile(lat, 90)), "max": float(lat.max())},
            "max_of_n_latency_s": {"mean": float(max_lat.mean()), "p90": float(np.percentile(max_lat, 90)),
                                   "max": float(max_lat.max())},
            "score_s_mean": float(np.mean([it.score_s for it in its])),
            "generate_s_total": float(sum(it.generate_s for it in its)),
        }

    def to_records(self) -> list[dict]:
        return [asdict(it) for it in self.items]


def _mean(values) -> float | None:
    """Mean over the rewarded samples (None: none had a reward)."""
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None


def prompt_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def best_of_n(policy, tokenizer, prompts: Sequence[str | list[dict]], scorer: Scorer, n: int, sampling: SamplingConfig,
              seed: int = 0, chat_format: str | None = None, columns: Sequence[dict] | None = None) -> BoNReport:
    """Sample `n` answers per prompt from `policy`, score each with `scorer` (normalized rewards),
    keep the best. `chat_format=None` uses the policy's saved format. `columns`: each prompt's
    dataset columns (e.g. a reference answer), for a scorer of reward sources (`rewards.Rewards`);
    an answer no source rewarded (NaN) is never the best unless no answer of the prompt has a reward."""
    if n < 1:
        raise ValueError(f"n must be >= 1 (got {n})")
    fmt_name = reward_format(tokenizer, chat_format).name  # the policy's format (Alpaca if none saved)
    report = BoNReport(n)
    stamps: list[float] = []
    hook = policy.register_forward_hook(lambda *_: stamps.append(time.perf_counter()))
    try:
        for i, prompt in enumerate(tqdm(prompts, desc=f"best-of-{n}", leave=False, disable=None)):
            stamps.clear()
            t0 = time.perf_counter()
            gens = generate_chat(policy, tokenizer, [prompt] * n, sampling, seed=prompt_seed(seed, i),
                                 chat_format=fmt_name)
            gen_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            cols = {k: [v] * n for k, v in columns[i].items()} if columns is not None else None
            rewards = (scorer.score([prompt] * n, [g.text for g in gens], columns=cols) if cols is not None
                       else scorer.score([prompt] * n, [g.text for g in gens]))
            score_s = time.perf_counter() - t1
            samples = []
            for g, r in zip(gens, rewards, strict=True):
                steps = len(g.token_ids) + (g.finish_reason == "stop_token")
                lat = stamps[min(steps, len(stamps)) - 1] - t0 if stamps and steps else 0.0
                samples.append(BoNSample(g.text, float(r) if np.isfinite(r) else None, steps, lat, g.finish_reason))
            rewards = np.asarray(rewards, dtype=np.float64)
            # first of equal maxima: deterministic; NaN (no reward) never beats a reward
            best = int(np.nanargmax(rewards)) if not np.isnan(rewards).all() else 0
            report.items.append(BoNItem(prompt, best, gens[best].text, samples[best].reward, samples, gen_s, score_s))
    finally:
        hook.remove()
    return report
