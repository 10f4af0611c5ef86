"""DAPO's dynamic sampling (Yu et al. 2025, section 3.2) for the critic-free group algorithms.

A group whose G rewards are all equal (every answer right, or every answer wrong) has zero
advantage everywhere: it teaches nothing, yet it counts in the token mean of the loss and so
shrinks the gradient of the groups that do. `dynamic_sampling`:

  drop       such groups are masked out of the update (their rows stay in the batch, masked: every
             process keeps the same number of rows);
  resample   fresh prompts are sampled, up to `max_resample_rounds` rounds, and their informative
             groups take the places of the uninformative ones; places still empty after the last
             round keep their uninformative group, masked as in `drop`.

Counted in the run's counts: `zero_signal_groups` (found), `resampled_groups` (replaced). The
fresh prompts and the sampling seed of round k of iteration `it` on process `rank` are pure functions
of (seed, it, k, rank) (seed streams `rl_resample_prompts`, `rl_resample_sampling`), so a resumed run
resamples exactly what the uninterrupted one did.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.placement import autocast
from ..seeds import seed_for
from .rollout import Rollout, concat_rollouts, generate, rows_of


def uninformative_groups(scores: torch.Tensor, keep: torch.Tensor, group_size: int, tol: float = 1e-6) -> torch.Tensor:
    """[n_groups] bool: every kept reward of the group is equal (within `tol`), or none is kept."""
    s, k = scores.reshape(-1, group_size), keep.reshape(-1, group_size)
    hi = torch.where(k, s, torch.full_like(s, -torch.inf)).max(1).values
    lo = torch.where(k, s, torch.full_like(s, torch.inf)).min(1).values
    return ~k.any(1) | ((hi - lo) <= tol)


def _add(counts: dict, key: str, n: int) -> None:
    if n:
        counts[key] = counts.get(key, 0) + n


def apply_dynamic_sampling(loop, r: Rollout, scores: torch.Tensor, keep: torch.Tensor, it: int
                           ) -> tuple[Rollout, torch.Tensor, torch.Tensor]:
    """(rollout, scores, keep) with the uninformative groups dropped (masked) or replaced."""
    cfg, G, counts = loop.cfg, loop.cfg.group_size, loop.state["counts"]
    bad = uninformative_groups(scores, keep, G)
    _add(counts, "zero_signal_groups", int(loop.sum(torch.tensor(float(bad.sum()))).item()))
    if cfg.dynamic_sampling == "resample":
        spare: list[tuple[Rollout, torch.Tensor, torch.Tensor]] = []  # informative fresh groups
        for k in range(1, cfg.max_resample_rounds + 1):
            # every process samples as many groups as the neediest one, so their collectives line up
            need = int(loop.gather(torch.tensor([float(int(bad.sum()) - len(spare))]).to(loop.accelerator.device))
                       .max().item())
            if need <= 0:
                break
            fresh = _sample_groups(loop, need, it, k)
            if fresh is None:
                continue
            fr, fs, fk = fresh
            for g in torch.nonzero(~uninformative_groups(fs, fk, G)).squeeze(1).tolist():
                rows = torch.arange(g * G, (g + 1) * G)
                spare.append((fr.select(rows), fs[rows], fk[rows]))
        r, scores, keep, bad, n_used = _fill(r, scores, keep, bad, spare, G, loop.s.tokenizer)
        _add(counts, "resampled_groups", int(loop.sum(torch.tensor(float(n_used))).item()))
    return r, scores, keep & ~bad.repeat_interleave(G)


def _fill(r, scores, keep, bad, spare, G, tokenizer):
    """Each uninformative group's place taken by a spare informative one while spares last."""
    parts, n_used = [], 0
    new_bad = bad.clone()
    for g in range(len(bad)):
        rows = torch.arange(g * G, (g + 1) * G)
        if bad[g] and n_used < len(spare):
            parts.append(spare[n_used])
            n_used += 1
            new_bad[g] = False
        else:
            parts.append((r.select(rows), scores[rows], keep[rows]))
    if not n_used:
        return r, scores, keep, bad, 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    merged = concat_rollouts([p[0] for p in parts], pad)
    return merged, torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts]), new_bad, n_used


def _sample_groups(loop, n_groups: int, it: int, k: int):
    """`n_groups` groups of fresh prompts (round k of iteration `it`), scored; None if unusable."""
    s, cfg, G = loop.s, loop.cfg, loop.cfg.group_size
    rng = np.random.default_rng(seed_for("rl_resample_prompts", loop.seed, it, k, loop.rank))
    idx = np.repeat(rng.choice(len(s.train_ids), size=n_groups, replace=n_groups > len(s.train_ids)), G)
    policy = loop.accelerator.unwrap_model(loop.model).policy
    seed = seed_for("rl_resample_sampling", loop.seed, it, k, loop.rank)
    with autocast(cfg.compute, loop.accelerator.device):
        fr = generate(policy, s.tokenizer, [s.train_prompts[i] for i in idx], [s.train_ids[i] for i in idx],
                      cfg.sampling, stop_ids=s.stop_ids, seed=seed)
    scored = loop._scores(fr, it, rows_of(s.train_columns, idx))
    if scored is None:
        return None
    return fr, scored[0], scored[1]
