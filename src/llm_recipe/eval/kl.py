"""KL divergence of a policy from its reference, estimated from the policy's own samples.

KL(pi || ref) = E_{y ~ pi}[log pi(y|x) - log ref(y|x)] over whole responses. Sampling y from pi
itself (temperature 1, no top-k / top-p / repetition penalty: the model's distribution, not a
shaped one) makes the per-sample difference of sequence log-probs (the "k1" estimator) unbiased;
its mean and standard error over prompts are reported. The stop token is part of the response, so
when to stop counts too. Responses longer than `max_new_tokens` are cut: the estimate is of the
KL between the two length-truncated distributions.

Best-of-N is not a model with log-probs: its KL to the policy it samples from is the analytic
bound log N - (N - 1) / N (Stiennon et al. 2020; Beirami et al. 2024 show it is an upper bound).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..config import SamplingConfig
from ..infer.generate import chat_prompt_ids, chat_stop_ids
from ..tokenizer.chat_formats import ChatFormat
from ..train.rollout import Rollout, generate, token_logprobs


def same_vocabulary(tok_a, tok_b) -> bool:
    """Log-probs of one token sequence are comparable only when both models read the same tokens."""
    return len(tok_a) == len(tok_b) and tok_a.get_vocab() == tok_b.get_vocab()


@torch.no_grad()
def sample_responses(policy, tokenizer, fmt: ChatFormat, prompts: Sequence, max_new_tokens: int, seed: int = 0,
                     batch_size: int = 16) -> list[Rollout]:
    """One temperature-1 response per prompt from `policy`, with the log-prob of every sampled
    token under it (what the KL estimate and the diversity measures read)."""
    pure = SamplingConfig(temperature=1.0, max_new_tokens=max_new_tokens)
    ids = chat_prompt_ids(tokenizer, fmt, list(prompts))
    stops = chat_stop_ids(policy, tokenizer, fmt)
    return [generate(policy, tokenizer, list(prompts[s : s + batch_size]), ids[s : s + batch_size], pure,
                     stop_ids=stops, seed=seed + s) for s in range(0, len(ids), batch_size)]


@torch.no_grad()
def kl_of_samples(samples: Sequence[Rollout], reference) -> dict:
    """The k1 estimate of KL(policy || reference) from the policy's samples, with its standard error."""
    per_seq: list[float] = []
    for r in samples:
        ref_logp = token_logprobs(reference, r)["logp"].cpu()
        per_seq += (r.logp - ref_logp).sum(1).tolist()
    kl = np.array(per_seq)
    return {"kl": float(kl.mean()), "kl_stderr": float(kl.std(ddof=1) / math.sqrt(len(kl))) if len(kl) > 1 else None,
            "n": len(kl), "estimator": "k1, sequence level, temperature-1 samples of the policy"}


def best_of_n_kl_bound(n: int) -> float:
    return math.log(n) - (n - 1) / n
