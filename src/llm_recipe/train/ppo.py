"""RLHF with PPO: policy, frozen reference, frozen reward (model or rules), value head / critic.

Why not the shared `Trainer`: its unit is "one batch from a fixed dataset -> one optimizer step".
PPO's data does not exist before training: each iteration *makes* its batch (rollout with the
current policy), then takes several optimizer steps over it (epochs x minibatches) against
quantities frozen at rollout time (old log-probs, values, advantages). So the orchestration lives
here, and the loop's pieces are reused: the cosine/constant LR `schedule`, the append-only
`MetricsLog` (metrics.jsonl), the non-finite-loss guard's policy (stop with a message, never
train on NaN), `write_run_manifest`, and the plotting of the run folder.

One iteration (all the arithmetic is in `rl_math`, the sampling in `rollout`):
  1. rollout: sample responses from the current policy (KV cache, temperature/top-k/top-p);
  2. score: reward per sequence (+ length penalty, missing-eos penalty); NaN/inf or an all-empty
     batch stops the run, or is skipped and counted (`on_bad_reward`);
  3. no-grad pass: policy log-probs and values (one forward with the value head), reference log-probs;
  4. shaping: r_t = -beta * KL_t (k1/k2/k3), score added at the last token; GAE; whitening;
  5. update: `epochs` passes over shuffled minibatches, clipped surrogate (or the KL-penalty
     objective) + vf_coef * clipped value loss - ent_coef * entropy;
  6. adaptive KL controller update, metrics line, progress bar.

GRPO (`grpo.py`) reuses steps 1-3 and the setup here, and replaces 4-5 by group advantages.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import LoRAConfig, PPOConfig, RLConfig
from ..infer.generate import chat_prompt_ids
from ..models.finetuning import disable_dropout, merge_lora, with_lora
from ..tokenizer.chat_formats import resolve_chat_format, stop_token_ids
from .metrics_log import MetricsLog
from .rl_math import (
    AdaptiveKLController,
    clipped_policy_loss,
    clipped_value_loss,
    explained_variance,
    gae,
    kl_estimate,
    kl_penalty_policy_loss,
    masked_mean,
    masked_whiten,
    shaped_rewards,
)
from .rollout import Rollout, generate, score_responses, token_logprobs
from .rollout_forward import response_states
from .schedule import cosine_with_warmup

PLOT_KEYS = ("reward_mean", "kl", "success", "response_len", "entropy", "clipfrac", "approx_kl", "vf_loss",
             "explained_var")


class RLStabilityError(RuntimeError):
    """Bad rewards or an empty batch with `on_bad_reward='stop'`: the one-line reason."""


# ---- setup shared with GRPO ---------------------------------------------------------------
@dataclass
class RLSetup:
    policy: torch.nn.Module
    ref: torch.nn.Module | None  # `policy` itself with LoRA (adapters disabled); None once merged
    tokenizer: object
    scorer: object
    train_prompts: list[str]
    eval_prompts: list[str]
    train_ids: list[list[int]] = field(default_factory=list)
    eval_ids: list[list[int]] = field(default_factory=list)
    stop_ids: list[int] = field(default_factory=list)

    @property
    def lora(self) -> bool:
        return self.ref is self.policy

    @classmethod
    def build(cls, policy, tokenizer, scorer, train_prompts: Sequence[str], eval_prompts: Sequence[str],
              chat_format: str | None = None, ref=None, lora: LoRAConfig | None = None) -> RLSetup:
        """Render prompts with the policy's chat format. The reference is a frozen copy of the
        policy, or with `lora` the policy itself: LoRA adapters are added and trained, and the
        reference log-probs are computed with the adapters disabled (no second copy in memory)."""
        if not train_prompts:
            raise ValueError("no training prompts for RL: nothing to roll out")
        fmt = resolve_chat_format(tokenizer, chat_format)
        disable_dropout(policy)  # old, current and reference log-probs are compared token by token
        stops = set(stop_token_ids(tokenizer, fmt))
        eos = getattr(getattr(policy, "generation_config", None), "eos_token_id", None)
        stops |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if lora is not None:
            if ref is not None:
                raise ValueError("with LoRA the reference is the policy with adapters disabled: pass no ref")
            policy = ref = with_lora(policy, lora)
        else:
            ref = ref if ref is not None else copy.deepcopy(policy)
            ref.eval().requires_grad_(False)
        return cls(policy, ref, tokenizer, scorer, list(train_prompts), list(eval_prompts),
                   chat_prompt_ids(tokenizer, fmt, list(train_prompts)),
                   chat_prompt_ids(tokenizer, fmt, list(eval_prompts)) if eval_prompts else [], sorted(stops))


def reference_logprobs(s: RLSetup, r: Rollout, temperature: float) -> torch.Tensor:
    """Per-token log-probs [B, T] of the reference (no grad): the frozen copy, or with LoRA the
    policy with its adapters switched off, which computes exactly the untouched base model."""
    if s.ref is None:
        raise RuntimeError("this RL setup's LoRA policy was merged into its weights: it has no reference any more")
    with torch.no_grad():
        if s.lora:
            with s.policy.disable_adapter():
                return token_logprobs(s.policy, r, temperature)["logp"]
        return token_logprobs(s.ref, r, temperature)["logp"]


def success_rate(texts: Sequence[str], prefix: str | None) -> float:
    if not prefix or not texts:
        return float("nan")
    return float(np.mean([t.lstrip().startswith(prefix) for t in texts]))


@torch.no_grad()
def evaluate_policy(s: RLSetup, cfg: RLConfig, seed: int) -> dict:
    """Held-out prompts. The answers (at `eval_temperature`, default: the training one) give the mean score,
    the success rate and the length; the KL to the reference (per-sequence sum of k1 = log pi -
    log pi_ref, averaged) is estimated on samples at the training temperature, since k1 is an
    unbiased KL estimate only for tokens drawn from pi."""
    if not s.eval_ids:
        return {}
    r = generate(s.policy, s.tokenizer, s.eval_prompts, s.eval_ids, cfg.sampling, stop_ids=s.stop_ids,
                 seed=seed)
    logp = r.logp if r.logp is not None else token_logprobs(s.policy, r, cfg.sampling.temperature)["logp"]
    ref_logp = reference_logprobs(s, r, cfg.sampling.temperature).to(logp.device)
    kl = (kl_estimate(logp, ref_logp, "k1") * r.response_mask).sum(1)
    if cfg.eval_temperature is not None and cfg.eval_temperature != cfg.sampling.temperature:
        greedy_or_other = cfg.sampling.model_copy(update={"temperature": cfg.eval_temperature})
        r = generate(s.policy, s.tokenizer, s.eval_prompts, s.eval_ids, greedy_or_other, stop_ids=s.stop_ids, seed=seed)
    scores = np.asarray(s.scorer.score(r.prompts, r.texts), dtype=np.float64)
    return {"score": float(np.mean(scores)), "success": success_rate(r.texts, cfg.success_prefix),
            "response_len": float(r.lengths.mean()), "kl": float(kl.mean()), "samples": r.texts[:8]}


def checked_scores(cfg: RLConfig, s: RLSetup, r: Rollout, counts: dict, it: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and the rows to keep. Bad rewards / empty batches stop (with the reason) or are
    skipped and counted, per `on_bad_reward`; never trained on."""
    if all(not t.strip() for t in r.texts):
        msg = f"iteration {it}: every response in the batch is empty"
        if cfg.on_bad_reward == "stop":
            raise RLStabilityError(msg + " (set on_bad_reward=skip to skip such batches)")
        counts["empty_batches"] = counts.get("empty_batches", 0) + 1
        return np.zeros(len(r)), np.zeros(len(r), dtype=bool)
    scores = score_responses(s.scorer, r, missing_eos_penalty=cfg.missing_eos_penalty,
                             length_penalty=cfg.length_penalty)
    finite = np.isfinite(scores)
    if not finite.all():
        n_bad = int((~finite).sum())
        if cfg.on_bad_reward == "stop":
            raise RLStabilityError(f"iteration {it}: {n_bad} of {len(scores)} rewards are NaN/inf: stopping "
                                   "instead of training on them (set on_bad_reward=skip to drop such samples)")
        counts["nonfinite_rewards"] = counts.get("nonfinite_rewards", 0) + n_bad
    return np.where(finite, scores, 0.0), finite


def make_optimizer(params, cfg: RLConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    fused = params[0].device.type in ("cpu", "cuda") and params[0].dtype in (torch.float32, torch.bfloat16)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95), fused=fused)


def optimizer_step(opt, params, cfg: RLConfig, loss: torch.Tensor, it: int) -> float:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss ({loss.item()}) at iteration {it}: stopping instead of "
                                 "training on NaN (lower lr, check the reward)")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm) if cfg.max_grad_norm else torch.zeros(())
    opt.step()
    return float(gn)


def set_lr(opt, cfg: RLConfig, update: int, total_updates: int) -> float:
    lr = cosine_with_warmup(update, lr=cfg.lr, warmup_steps=0, max_steps=total_updates,
                            min_lr_ratio=cfg.min_lr_ratio)
    for g in opt.param_groups:
        g["lr"] = lr
    return lr


def prompt_batch(n_prompts: int, batch: int, seed: int, it: int) -> np.ndarray:
    """Prompt indices of an iteration: a pure function of (seed, iteration)."""
    return np.random.default_rng([seed, it]).choice(n_prompts, size=batch, replace=batch > n_prompts)


def conclude_run(s: RLSetup, cfg: RLConfig, out: Path, log: MetricsLog, seed: int, before: dict,
                 history: list[dict], counts: dict, title: str | None) -> RLResult:
    """End of a PPO/GRPO run: the held-out evaluation after training (same prompts and seed as
    before it), the model saved when `title` is given, and `summary.json`."""
    from ..files import write_json

    after = evaluate_policy(s, cfg, seed + 7919)
    model_dir = finish_run(s, out, log, title) if title else None
    write_json(out / "summary.json", {"before": before, "after": after, "counts": counts,
                                      "iterations": len(history)})
    return RLResult(model_dir, before, after, history, counts)


def finish_run(s: RLSetup, out: Path, log: MetricsLog, title: str) -> Path:
    from ..report.plots import plot_metrics

    model_dir = out / "model"
    if s.lora:
        # Merged in place (the run is over, no extra copy): the setup loses its reference.
        s.policy, s.ref = merge_lora(s.policy, out), None
    s.policy.save_pretrained(model_dir, safe_serialization=True)
    s.tokenizer.save_pretrained(model_dir)
    plot_metrics(log.path, out / "rl_metrics.png", keys=PLOT_KEYS, title=title)
    return model_dir


@dataclass
class RLResult:
    model_dir: Path | None
    before: dict
    after: dict
    history: list[dict]
    counts: dict  # skipped samples / batches by reason


# ---- the value model ----------------------------------------------------------------------
class ValueHead(torch.nn.Module):
    """Scalar value per position on the policy's last hidden state (zero-initialised: V=0 at start)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.v = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.v.weight)
        torch.nn.init.zeros_(self.v.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.v(h.float()).squeeze(-1)


def critic_values(critic, r: Rollout) -> torch.Tensor:
    """Per-token values [B, T] from a separate `*ForSequenceClassification` critic (num_labels=1):
    its score head applied at every position instead of only the last one."""
    device = next(critic.parameters()).device
    h = response_states(getattr(critic, critic.base_model_prefix), r, device)
    return critic.score(h).float().squeeze(-1) * r.response_mask.to(device)


def load_critic(path: str | os.PathLike) -> torch.nn.Module:
    """A critic initialised from a reward model directory (or any causal LM dir: fresh score head)."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)


# ---- PPO ----------------------------------------------------------------------------------
def _values_and_logp(s: RLSetup, head: ValueHead | None, critic, r: Rollout, cfg: PPOConfig,
                     entropy: bool = False, rollout_time: bool = False) -> dict[str, torch.Tensor]:
    if rollout_time and head is None and r.logp is not None:
        # Separate critic: log pi_old comes from the sampling pass, only the critic runs.
        device = next(s.policy.parameters()).device
        return {"logp": r.logp.to(device), "values": critic_values(critic, r)}
    out = token_logprobs(s.policy, r, cfg.sampling.temperature, entropy=entropy, hidden=head is not None)
    out["values"] = head(out.pop("hidden")) if head is not None else critic_values(critic, r)
    return out


def run_ppo(s: RLSetup, cfg: PPOConfig, output_dir: str | os.PathLike, seed: int = 0, *,
            critic: torch.nn.Module | None = None, full_config=None, save: bool = True) -> RLResult:
    """Train `s.policy` with PPO; returns before/after held-out evaluations and per-iteration metrics.
    `critic`: the separate value model for `value_model='reward_model'` (see `load_critic`)."""
    from ..provenance import write_run_manifest

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(seed)
    device = next(s.policy.parameters()).device
    head = None
    if cfg.value_model == "head":
        head = ValueHead(s.policy.config.hidden_size).to(device)
        value_params = list(head.parameters())
    else:
        if critic is None:
            raise ValueError("value_model 'reward_model' needs a critic (load_critic(reward model dir))")
        critic.to(device).train()
        value_params = [p for p in critic.parameters() if p.requires_grad]
    params = [p for p in s.policy.parameters() if p.requires_grad] + value_params
    opt = make_optimizer(params, cfg)
    kl_ctl = AdaptiveKLController(cfg.beta, cfg.kl_target, cfg.kl_horizon)
    log = MetricsLog(out / "metrics.jsonl")
    log.truncate_after(-1)  # a re-run starts its log afresh (PPO runs are not resumed)
    write_run_manifest(out, stage="ppo", config=full_config or cfg)
    before = evaluate_policy(s, cfg, seed + 7919)
    mb = min(cfg.minibatch_size, cfg.rollout_batch_size)
    n_mb = math.ceil(cfg.rollout_batch_size / mb)
    total_updates, update = cfg.iterations * cfg.epochs * n_mb, 0
    counts: dict = {}
    history: list[dict] = []
    bar = tqdm(range(cfg.iterations), desc="ppo", disable=None, dynamic_ncols=True)
    s.policy.train()
    for it in bar:
        t0 = time.perf_counter()
        idx = prompt_batch(len(s.train_ids), cfg.rollout_batch_size, seed, it)
        r = generate(s.policy, s.tokenizer, [s.train_prompts[i] for i in idx], [s.train_ids[i] for i in idx],
                     cfg.sampling, stop_ids=s.stop_ids, seed=seed * 1_000_003 + it)
        t_gen = time.perf_counter() - t0
        scores, keep = checked_scores(cfg, s, r, counts, it)
        if not keep.any():
            counts["skipped_iterations"] = counts.get("skipped_iterations", 0) + 1
            continue
        if not keep.all():
            sel = torch.from_numpy(np.nonzero(keep)[0])
            r, scores = r.select(sel), scores[keep]
        mask = r.response_mask.to(device)
        with torch.no_grad():
            old = _values_and_logp(s, head, critic, r, cfg, rollout_time=True)
            ref_logp = reference_logprobs(s, r, cfg.sampling.temperature)
            rewards, kl = shaped_rewards(torch.as_tensor(scores, dtype=torch.float32, device=device),
                                         old["logp"], ref_logp, mask, kl_ctl.beta, cfg.kl_estimator)
            adv, returns = gae(rewards, old["values"], mask, cfg.gamma, cfg.lam)
            if cfg.whiten_advantages:
                adv = masked_whiten(adv, mask)
        stats: dict[str, list[float]] = {}
        g = torch.Generator().manual_seed(seed * 7 + it)
        for _ in range(cfg.epochs):
            perm = torch.randperm(len(r), generator=g)
            for b in range(0, len(r), mb):
                i = perm[b : b + mb]
                sub = r.select(i)
                m = mask[i.to(device)]
                cur = _values_and_logp(s, head, critic, sub, cfg, entropy=True)
                if cfg.objective == "clip":
                    pg, pst = clipped_policy_loss(cur["logp"], old["logp"][i], adv[i], m, cfg.clip_eps)
                else:
                    pg, pst = kl_penalty_policy_loss(cur["logp"], old["logp"][i], adv[i], m, cfg.penalty_beta)
                vf, vst = clipped_value_loss(cur["values"], old["values"][i], returns[i], m, cfg.vf_clip)
                ent = masked_mean(cur["entropy"], m)
                loss = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
                lr = set_lr(opt, cfg, update, total_updates)
                gn = optimizer_step(opt, params, cfg, loss, it)
                update += 1
                for k, v in {"pg_loss": pg.item(), "vf_loss": vf.item(), "entropy": ent.item(),
                             "grad_norm": gn, **{k: float(v) for k, v in {**pst, **vst}.items()}}.items():
                    stats.setdefault(k, []).append(v)
        seq_kl = float((kl * mask).sum(1).mean())
        kl_ctl.update(seq_kl, len(r))
        n_tokens = float(mask.sum())
        rec = {"step": it + 1, "reward_mean": float(scores.mean()), "reward_std": float(scores.std()),
               "kl": seq_kl, "beta": kl_ctl.beta, "response_len": float(r.lengths.mean()),
               "success": success_rate(r.texts, cfg.success_prefix),
               "explained_var": explained_variance(old["values"], returns, mask), "lr": lr,
               "rollout_tokens_per_s": n_tokens / max(t_gen, 1e-9),
               "iteration_s": time.perf_counter() - t0, **{k: float(np.mean(v)) for k, v in stats.items()}}
        log.write(rec)
        history.append(rec)
        bar.set_postfix(reward=f"{rec['reward_mean']:.3f}", kl=f"{seq_kl:.3f}")
    bar.close()
    return conclude_run(s, cfg, out, log, seed, before, history, counts, "PPO" if save else None)


# ---- recipe stage -------------------------------------------------------------------------
