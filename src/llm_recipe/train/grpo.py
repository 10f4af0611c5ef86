"""GRPO: PPO's rollout machinery without a value model (the memory-light variant).

Each iteration samples G responses for each of `rollout_batch_size / G` prompts, scores them, and
uses the group-normalized reward (r - mean_group) / (std_group + 1e-4) as the advantage of every
token of the response. The KL to the reference is a term of the loss (k3, weight beta), not a
reward shaping; the loss and its aggregation are TRL's GRPOTrainer's (`rl_math.grpo_loss`), so a
test can check both give the same number on the same tokens. The setup, rollout, reward checks,
evaluation, metrics log and plot are PPO's (`ppo.py`).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import GRPOConfig
from .metrics_log import MetricsLog
from .ppo import (
    RLResult,
    RLSetup,
    checked_scores,
    conclude_run,
    evaluate_policy,
    make_optimizer,
    optimizer_step,
    prompt_batch,
    reference_logprobs,
    set_lr,
    success_rate,
)
from .rl_math import group_advantages, grpo_loss, kl_estimate, masked_mean
from .rollout import generate, token_logprobs


def run_grpo(s: RLSetup, cfg: GRPOConfig, output_dir: str | os.PathLike, seed: int = 0, *,
             full_config=None, save: bool = True) -> RLResult:
    from ..provenance import write_run_manifest

    G = cfg.group_size
    if cfg.rollout_batch_size % G:
        raise ValueError(f"grpo.rollout_batch_size ({cfg.rollout_batch_size}) must be a multiple of "
                         f"grpo.group_size ({G})")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(seed)
    device = next(s.policy.parameters()).device
    params = [p for p in s.policy.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg)
    log = MetricsLog(out / "metrics.jsonl")
    log.truncate_after(-1)
    write_run_manifest(out, stage="grpo", config=full_config or cfg)
    before = evaluate_policy(s, cfg, seed + 7919)
    mb = min(cfg.minibatch_size, cfg.rollout_batch_size)
    total_updates = cfg.iterations * cfg.epochs * math.ceil(cfg.rollout_batch_size / mb)
    update, counts, history = 0, {}, []
    n_groups = cfg.rollout_batch_size // G
    bar = tqdm(range(cfg.iterations), desc="grpo", disable=None, dynamic_ncols=True)
    s.policy.train()
    for it in bar:
        t0 = time.perf_counter()
        # Prompt-major layout: rows [g*G, (g+1)*G) are the G samples of one prompt.
        idx = np.repeat(prompt_batch(len(s.train_ids), n_groups, seed, it), G)
        r = generate(s.policy, s.tokenizer, [s.train_prompts[i] for i in idx], [s.train_ids[i] for i in idx],
                     cfg.sampling, stop_ids=s.stop_ids, seed=seed * 1_000_003 + it)
        t_gen = time.perf_counter() - t0
        scores, keep = checked_scores(cfg, s, r, counts, it)
        if not keep.any():
            counts["skipped_iterations"] = counts.get("skipped_iterations", 0) + 1
            continue
        rewards = torch.as_tensor(scores, dtype=torch.float32)
        adv = group_advantages(rewards, G, cfg.scale_rewards)
        # A group with a bad reward is dropped whole: its mean/std would be wrong for the others.
        group_ok = torch.from_numpy(keep.reshape(-1, G).all(1)).repeat_interleave(G)
        if not bool(group_ok.all()):
            counts["dropped_groups"] = counts.get("dropped_groups", 0) + int((~group_ok).sum()) // G
            sel = torch.nonzero(group_ok).squeeze(1)
            r, adv, scores = r.select(sel), adv[sel], scores[group_ok.numpy()]
            if len(r) == 0:
                counts["skipped_iterations"] = counts.get("skipped_iterations", 0) + 1
                continue
        adv = adv.to(device)
        mask = r.response_mask.to(device)
        with torch.no_grad():
            # log pi_old from the sampling pass: no second forward over the rollout
            old_logp = r.logp.to(device) if r.logp is not None else token_logprobs(s.policy, r, cfg.sampling.temperature)["logp"]
            ref_logp = reference_logprobs(s, r, cfg.sampling.temperature) if cfg.beta else None
        n_items = float(mask.sum())
        stats: dict[str, list[float]] = {}
        g = torch.Generator().manual_seed(seed * 7 + it)
        for _ in range(cfg.epochs):
            perm = torch.randperm(len(r), generator=g)
            for b in range(0, len(r), mb):
                i = perm[b : b + mb]
                m = mask[i.to(device)]
                cur = token_logprobs(s.policy, r.select(i), cfg.sampling.temperature, entropy=True)
                # dapo: each minibatch's token sum over the rollout's tokens, times the number of
                # minibatches, so one minibatch's loss has the scale of a token mean.
                loss, st = grpo_loss(cur["logp"], old_logp[i], ref_logp[i] if ref_logp is not None else None,
                                     adv[i], m, beta=cfg.beta, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
                                     loss_type=cfg.loss_type, max_completion_length=cfg.sampling.max_new_tokens,
                                     num_items=n_items * len(i) / len(r))
                ent = masked_mean(cur["entropy"], m)
                loss = loss - cfg.ent_coef * ent
                lr = set_lr(opt, cfg, update, total_updates)
                gn = optimizer_step(opt, params, cfg, loss, it)
                update += 1
                for k, v in {"loss": loss.item(), "entropy": ent.item(), "grad_norm": gn,
                             **{k: float(v) for k, v in st.items()}}.items():
                    stats.setdefault(k, []).append(v)
        with torch.no_grad():
            ref_now = ref_logp if ref_logp is not None else reference_logprobs(s, r, cfg.sampling.temperature)
            seq_kl = float((kl_estimate(old_logp, ref_now, "k1") * mask).sum(1).mean())
        stats.pop("kl", None)
        rec = {"step": it + 1, "reward_mean": float(scores.mean()), "reward_std": float(scores.std()),
               "kl": seq_kl, "response_len": float(r.lengths.mean()),
               "success": success_rate(r.texts, cfg.success_prefix), "lr": lr,
               "rollout_tokens_per_s": n_items / max(t_gen, 1e-9), "iteration_s": time.perf_counter() - t0,
               **{k: float(np.mean(v)) for k, v in stats.items()}}
        log.write(rec)
        history.append(rec)
        bar.set_postfix(reward=f"{rec['reward_mean']:.3f}", kl=f"{seq_kl:.3f}")
    bar.close()
    return conclude_run(s, cfg, out, log, seed, before, history, counts, "GRPO" if save else None)


