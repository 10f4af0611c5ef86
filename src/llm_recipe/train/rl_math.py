"""The arithmetic of RLHF, as pure functions on tensors (no models): PPO and GRPO share it.

Shapes: per-token tensors are [B, T] over *response* tokens, with `mask` [B, T] = 1 on real
response tokens (responses are right-padded, so rows have different lengths).

  KL estimators (Schulman, "Approximating KL divergence"), for KL(pi || ref) with x ~ pi and
  log r = log ref(x) - log pi(x):
      k1 = -log r                  unbiased, high variance, can be negative per token
      k2 = (log r)^2 / 2           biased, low variance
      k3 = (r - 1) - log r         unbiased, low variance, >= 0 per token
  Reward shaping   r_t = -beta * kl_t, plus the sequence score at the last response token.
  GAE              delta_t = r_t + gamma V_{t+1} - V_t ;  A_t = delta_t + gamma lambda A_{t+1}
                   (V and A are 0 past a row's last token); returns R_t = A_t + V_t.
  Clipped surrogate  L = E[max(-A rho, -A clip(rho, 1-eps, 1+eps))], rho = pi/pi_old per token.
  Clipped value      L = 1/2 E[max((V-R)^2, (clip(V, V_old-c, V_old+c)-R)^2)].
  KL-penalty PPO     L = E[-A rho + beta_ppo * k3(pi_old || pi)] (the PPO paper's alternative).
  GRPO               A_i = (r_i - mean_group) / (std_group + 1e-4), one value per sequence;
                     per-token loss = -min(rho A, clip(rho) A) + beta k3(pi || ref), aggregated as
                     TRL's GRPOTrainer does for `loss_type` grpo / bnpo / dr_grpo / dapo.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

KLKind = Literal["k1", "k2", "k3"]
SumFn = Callable[[torch.Tensor], torch.Tensor]  # element-wise sum over processes


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None,
                sum_fn: SumFn | None = None) -> torch.Tensor:
    """Mean over masked-in entries (0 when there are none, instead of NaN). `sum_fn` (whole-tensor
    means only) sums the numerator and the count over processes: the mean of the global batch."""
    if dim is not None:
        return masked_sum(x, mask, dim) / mask.sum(dim).clamp(min=1)
    if sum_fn is None:
        return masked_sum(x, mask) / mask.sum().clamp(min=1)
    total, n = sum_fn(torch.stack([masked_sum(x, mask), mask.sum().to(x.dtype)]))
    return total / n.clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True, sum_fn: SumFn | None = None) -> torch.Tensor:
    mean = masked_mean(x, mask, sum_fn=sum_fn)
    if sum_fn is None:
        n, ss = mask.sum(), masked_sum((x - mean) ** 2, mask)
    else:
        ss, n = sum_fn(torch.stack([masked_sum((x - mean) ** 2, mask), mask.sum().to(x.dtype)]))
    var = ss / n.clamp(min=1)
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8,
                  sum_fn: SumFn | None = None) -> torch.Tensor:
    """(x - mean) / std over the masked-in entries (of all processes with `sum_fn`); padded entries
    come out as 0."""
    mean, var = masked_mean(x, mask, sum_fn=sum_fn), masked_var(x, mask, sum_fn=sum_fn)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLKind = "k1") -> torch.Tensor:
    """Per-sample estimate of KL(pi || ref) for samples x ~ pi (see module docstring)."""
    log_r = ref_logp - logp
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r**2
    if kind == "k3":
        # exp of a clamped log-ratio: one token the policy has made ~impossible must not give inf.
        return torch.expm1(log_r.clamp(max=20.0)) - log_r
    raise ValueError(f"unknown KL estimator '{kind}' (k1, k2, k3)")


def shaped_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                   beta: float, kind: KLKind = "k1") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards -beta * kl_t with each row's score added at its last response token.
    Returns (rewards [B, T], kl [B, T]); both 0 on padding. Rows with no tokens get nothing."""
    kl = kl_estimate(logp, ref_logp, kind) * mask
    rewards = -beta * kl
    lengths = mask.sum(1).long()
    rows = torch.nonzero(lengths > 0).squeeze(1)
    rewards[rows, lengths[rows] - 1] += scores[rows].to(rewards.dtype)
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over right-padded rows. Returns (advantages, returns),
    0 on padding. The value after a row's last token is 0 (the episode ends there)."""
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    last = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_value = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        m = mask[:, t].to(rewards.dtype)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * m
        adv[:, t] = last
        # Only a real token passes its value/advantage back to the token before it.
        next_value = values[:, t] * m
    returns = (adv + values) * mask
    return adv, returns


def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                        eps: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate (token mean). Stats: clip fraction and approx KL(old || new) (k3)."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    loss1 = -adv * ratio
    loss2 = -adv * torch.clamp(ratio, 1.0 - eps, 1.0 + eps)
    loss = masked_mean(torch.max(loss1, loss2), mask)
    with torch.no_grad():
        clipfrac = masked_mean((loss2 > loss1).float(), mask)
        approx_kl = masked_mean(torch.expm1(log_ratio) - log_ratio, mask)
    return loss, {"clipfrac": clipfrac, "approx_kl": approx_kl}


def kl_penalty_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                           beta: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The PPO paper's penalty variant: -A rho + beta * KL(pi_old || pi), KL per token by k3."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    kl = torch.expm1(log_ratio) - log_ratio  # k3 with samples from pi_old: r = pi / pi_old
    loss = masked_mean(-adv * ratio + beta * kl, mask)
    with torch.no_grad():
        approx_kl = masked_mean(kl, mask)
    return loss, {"clipfrac": torch.zeros((), device=logp.device), "approx_kl": approx_kl}


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    l1 = (values - returns) ** 2
    l2 = (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(l1, l2), mask)
    with torch.no_grad():
        vclipfrac = masked_mean((l2 > l1).float(), mask)
    return loss, {"vf_clipfrac": vclipfrac}


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R): 1 is a perfect critic, 0 no better than a constant."""
    var_r = masked_var(returns, mask).item()
    if var_r == 0:
        return float("nan")
    return 1.0 - masked_var(returns - values, mask).item() / var_r


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position ([..., V] -> [...])."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: Literal["group", "batch", "none"] = "group",
                     eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages: reward minus its group's mean, divided by the group's (unbiased) std + eps.
    Rows are ordered prompt-major: rows [g*G, (g+1)*G) are the G samples of prompt g."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards is not a multiple of the group size {group_size}")
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(1).repeat_interleave(group_size)
    adv = rewards - mean
    if scale == "group":
        std = grouped.std(1).repeat_interleave(group_size) if group_size > 1 else torch.zeros_like(rewards)
        adv = adv / (std + eps)
    elif scale == "batch":
        adv = adv / (rewards.std() + eps)
    return adv


GRPOLossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
ImportanceLevel = Literal["token", "sequence"]


def importance_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor,
                     level: ImportanceLevel = "token") -> torch.Tensor:
    """pi / pi_old per token [B, T], or GSPO's per sequence [B, 1]: exp(mean_t log pi/pi_old)."""
    log_ratio = logp - old_logp
    if level == "token":
        return torch.exp(log_ratio)
    if level == "sequence":
        return torch.exp(masked_sum(log_ratio, mask, 1) / mask.sum(1).clamp(min=1))[:, None]
    raise ValueError(f"unknown importance sampling level {level!r} (token, sequence)")


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, adv: torch.Tensor,
              mask: torch.Tensor, *, beta: float = 0.0, eps_low: float = 0.2, eps_high: float = 0.2,
              loss_type: GRPOLossType = "grpo", max_completion_length: int | None = None,
              num_items: float | None = None, kl_is_correction: bool = True,
              importance_sampling: ImportanceLevel = "token",
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GRPO loss with the aggregation of TRL's GRPOTrainer (`_compute_loss`, token-level ratios).

    `num_items` (dapo): response tokens of the whole rollout batch, so that minibatches of one
    rollout sum to a token mean over the rollout; default: this batch's tokens.
    `kl_is_correction` (TRL's `use_bias_correction_kl`, on by default in TRL 1.16): the k3 term is
    weighted by the ratio pi/pi_old, since the tokens were sampled from pi_old, not pi.
    `importance_sampling="sequence"` is GSPO (Zheng et al. 2025; TRL's `importance_sampling_level`): one
    ratio per completion, exp of the mean per-token log-ratio, clipped as a whole."""
    adv = adv.unsqueeze(1) if adv.dim() == 1 else adv
    ratio = importance_ratio(logp, old_logp, mask, importance_sampling)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = None
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("GRPO with beta != 0 needs reference log-probs")
        kl = kl_estimate(logp, ref_logp, "k3")
        per_token = per_token + beta * (kl * ratio if kl_is_correction else kl)
    if loss_type == "grpo":
        loss = (masked_sum(per_token, mask, 1) / mask.sum(1).clamp(min=1)).mean()
    elif loss_type == "bnpo":
        loss = masked_sum(per_token, mask) / mask.sum().clamp(min=1)
    elif loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("loss_type 'dr_grpo' needs max_completion_length")
        loss = masked_sum(per_token, mask) / (per_token.size(0) * max_completion_length)
    elif loss_type == "dapo":
        n = num_items if num_items is not None else mask.sum().item()
        loss = masked_sum(per_token, mask) / max(n, 1.0)
    else:
        raise ValueError(f"unknown GRPO loss_type '{loss_type}'")
    with torch.no_grad():
        is_low = (ratio < 1 - eps_low) & (adv < 0)
        is_high = (ratio > 1 + eps_high) & (adv > 0)
        stats = {"clipfrac": masked_mean((is_low | is_high).float(), mask),
                 "approx_kl": masked_mean(torch.expm1(logp - old_logp) - (logp - old_logp), mask),
                 "kl": masked_mean(kl, mask) if kl is not None else torch.zeros((), device=logp.device)}
    return loss, stats


def leave_one_out_advantages(rewards: torch.Tensor, keep: torch.Tensor, group_size: int,
                             normalize: bool = False) -> torch.Tensor:
    """RLOO: r_i minus the mean reward of the other scored samples of its group (TRL's RLOOTrainer:
    rows not kept are left out of their siblings' baselines and get advantage 0; a group with one
    scored sample gives it 0). `normalize`: whitened over the kept rows of the batch (std + 1e-4)."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards is not a multiple of the group size {group_size}")
    r = torch.where(keep, rewards, torch.zeros_like(rewards)).view(-1, group_size)
    k = keep.view(-1, group_size).to(rewards.dtype)
    n_other = (k.sum(1, keepdim=True) - k).clamp(min=0)
    baseline = (r.sum(1, keepdim=True) - r) / n_other.clamp(min=1)
    ok = keep.view(-1, group_size) & (n_other > 0)
    adv = torch.where(ok, r - baseline, torch.zeros_like(r)).view(-1)
    if normalize and ok.any():
        sel = adv[ok.view(-1)]
        std = sel.std() if sel.numel() > 1 else torch.zeros((), dtype=adv.dtype, device=adv.device)
        adv = torch.where(ok.view(-1), (adv - sel.mean()) / (std + 1e-4), torch.zeros_like(adv))
    return adv


def rloo_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, *,
              eps_low: float = 0.2, eps_high: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """RLOO's loss as TRL's RLOOTrainer: the sequence log-ratio (summed over tokens), clipped
    surrogate per sequence, mean over sequences."""
    log_ratio = masked_sum(logp, mask, 1) - masked_sum(old_logp, mask, 1)
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    loss = -torch.min(ratio * adv, clipped * adv).mean()
    with torch.no_grad():
        rows = mask.sum(1) > 0
        clip = (((ratio < 1 - eps_low) & (adv < 0)) | ((ratio > 1 + eps_high) & (adv > 0))).float()
        stats = {"clipfrac": clip[rows].mean() if rows.any() else torch.zeros((), device=logp.device),
                 "approx_kl": masked_mean(torch.expm1(logp - old_logp) - (logp - old_logp), mask)}
    return loss, stats


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """REINFORCE returns G_t = sum_{s >= t} gamma^(s-t) r_s over each row's response tokens (0 on padding)."""
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        running = (rewards[:, t] + gamma * running) * mask[:, t]
        out[:, t] = running
    return out


@dataclass
class AdaptiveKLController:
    """Ziegler et al. (2019): beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon.
    With `target=None` beta stays fixed."""

    beta: float
    target: float | None = None
    horizon: int = 10000

    def update(self, current_kl: float, n_steps: int) -> float:
        if self.target is not None and math.isfinite(current_kl):
            err = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
            self.beta *= 1.0 + err * n_steps / self.horizon
        return self.beta
