"""The RL loop PPO and GRPO share: rollout -> score -> update, on the same machinery as the shared
training loop (accelerate, `build_optimizer`, LR as a function of the update, NaN guard, metrics,
atomic checkpoints, exact resume).

Why not `loop.Trainer`: its unit is "one batch from a fixed dataset -> one optimizer step". RL's
data does not exist before training: each iteration *makes* its batch (rollout with the current
policy), then takes several optimizer steps over it (epochs x minibatches) against quantities
frozen at rollout time (old log-probs, values, advantages). An algorithm plugs in an
`RLObjective` (the advantages of a rollout and the loss of a minibatch), as the other algorithms
plug an `Objective` into the shared loop; this module owns the rest:

  1. rollout: each process samples its share of the iteration's prompts from the current policy;
  2. score: reward per sequence (+ length / missing-eos penalties); NaN/inf rewards or an all-empty
     batch on any process stop the run with the reason, or are masked out and counted (`on_bad_reward`);
  3. no-grad pass: log pi_old (from the sampling pass), values, reference log-probs; when the
     update is one optimizer step over the whole rollout (one epoch, one minibatch) and the
     objective reads log pi_old only in its loss (GRPO), log pi_old is the update's own forward,
     detached (the policy that sampled is the one updated), as TRL's GRPO with num_iterations=1;
  4. the objective's advantages (global statistics over all processes);
  5. `epochs` passes over shuffled minibatches: the objective's loss, clipped update;
  6. metrics line (means over processes), checkpoint every `save_every` iterations.

Several processes: the policy (+ value head / critic) is one module (`RLModel`) prepared by
accelerate (DDP), so gradients are averaged over the processes; every process holds the same
number of rows (masked, never dropped) and so runs the same number of updates. Held-out
evaluation and saving run on the main process.

Exact resume: the prompts, the sampling seed and the minibatch order of iteration k are pure
functions of (seed, k), the LR a function of the update count; a checkpoint holds the trained
parameters (the whole policy, or its LoRA adapters), the optimizer, the objective's state (PPO's
KL coefficient) and the run's history, so a run stopped after iteration k and resumed ends with
the weights of one that never stopped.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import distributed
from ..config import LoRAConfig, RLConfig
from ..files import lock_folder, write_complete, write_json
from ..infer.generate import chat_prompt_ids, chat_stop_ids
from ..models.finetuning import disable_dropout, merge_lora, with_lora
from ..models.placement import autocast, use_threads
from ..provenance import write_run_manifest
from ..report.model_card import write_model_card
from ..report.plots import plot_metrics
from ..seeds import seed_for
from ..tokenizer.chat_formats import resolve_chat_format
from .checkpoint import (
    kept_note,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from .dynamic_sampling import apply_dynamic_sampling
from .loop import enable_gradient_checkpointing, make_accelerator
from .metrics_log import MetricsLog
from .optimizer import build_optimizer, set_lr
from .rl_math import kl_estimate
from .rollout import Rollout, generate, rows_of, score_rollout, token_logprobs
from .rollout_forward import response_states
from .run_control import RunControl
from .schedule import scheduled_lr
from .tracking import plain_progress, start_trackers

# what the run's plot shows (one panel per metric)
RL_PLOT_KEYS = ("reward_mean", "kl", "success", "response_len", "entropy", "clipfrac", "approx_kl", "vf_loss",
                "explained_var")


class RLStabilityError(RuntimeError):
    """Bad rewards or an empty batch with `on_bad_reward='stop'`: the one-line reason."""


# ---- the policy and its reference ---------------------------------------------------------
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
    # the prompts' dataset columns (e.g. a reference answer), one list per column, for reward sources
    train_columns: dict[str, list] = field(default_factory=dict)
    eval_columns: dict[str, list] = field(default_factory=dict)

    @property
    def lora(self) -> bool:
        return self.ref is self.policy

    @classmethod
    def build(cls, policy, tokenizer, scorer, train_prompts: Sequence[str], eval_prompts: Sequence[str],
              chat_format: str | None = None, ref=None, lora: LoRAConfig | None = None,
              train_columns: dict[str, list] | None = None, eval_columns: dict[str, list] | None = None,
              reference: bool = True) -> RLSetup:
        """Render prompts with the policy's chat format. The reference is a frozen copy of the
        policy, or with `lora` the policy itself: LoRA adapters are added and trained, and the
        reference log-probs are computed with the adapters disabled (no second copy in memory).
        `reference=False`: no copy (an objective that never reads it, GRPO with beta 0; the held-out
        evaluation then reports no KL)."""
        if not train_prompts:
            raise ValueError("no training prompts for RL: nothing to roll out")
        fmt = resolve_chat_format(tokenizer, chat_format)
        disable_dropout(policy)  # old, current and reference log-probs are compared token by token
        stops = chat_stop_ids(policy, tokenizer, fmt)
        if lora is not None:
            if ref is not None:
                raise ValueError("with LoRA the reference is the policy with adapters disabled: pass no ref")
            policy = ref = with_lora(policy, lora)
        else:
            ref = ref if ref is not None else copy.deepcopy(policy) if reference else None
            if ref is not None:
                ref.eval().requires_grad_(False)
        return cls(policy, ref, tokenizer, scorer, list(train_prompts), list(eval_prompts),
                   chat_prompt_ids(tokenizer, fmt, list(train_prompts)),
                   chat_prompt_ids(tokenizer, fmt, list(eval_prompts)) if eval_prompts else [], stops,
                   dict(train_columns or {}), dict(eval_columns or {}))


def reference_logprobs(s: RLSetup, r: Rollout, temperature: float) -> torch.Tensor:
    """Per-token log-probs [B, T] of the reference (no grad): the frozen copy, or with LoRA the
    policy with its adapters switched off, which computes exactly the untouched base model."""
    if s.ref is None:
        raise RuntimeError("this RL setup has no reference (built with reference=False, or its LoRA policy was "
                           "merged into its weights)")
    with torch.no_grad():
        if s.lora:
            with s.policy.disable_adapter():
                return token_logprobs(s.policy, r, temperature)["logp"]
        return token_logprobs(s.ref, r, temperature)["logp"]


class RLModel(torch.nn.Module):
    """The trained modules as one: the policy and the objective's value model (a head on the
    policy's hidden states, or a separate critic). One forward gives what an update needs, so a
    DDP wrapper (accelerate) sees every trained parameter used in its own forward."""

    def __init__(self, policy: torch.nn.Module, value: torch.nn.Module | None = None, value_kind: str = "none"):
        super().__init__()
        self.policy = policy
        self.value = value
        self.value_kind = value_kind  # "none" | "head" (reads policy hidden states) | "critic"

    def forward(self, query_ids, query_mask, response_ids, response_mask, *, temperature: float,
                entropy: bool = False, values: bool = False, logp: bool = True) -> dict[str, torch.Tensor]:
        r = Rollout([], query_ids, query_mask, response_ids, response_mask, torch.zeros(0), [])
        head = values and self.value_kind == "head"
        out = token_logprobs(self.policy, r, temperature, entropy=entropy, hidden=head) if logp or head else {}
        if head:
            out["values"] = self.value(out.pop("hidden"))
        elif values and self.value_kind == "critic":
            out["values"] = critic_values(self.value, r)
        return out


def critic_values(critic, r) -> torch.Tensor:
    """Per-token values [B, T] from a separate `*ForSequenceClassification` critic (num_labels=1):
    its score head applied at every position instead of only the last one."""
    device = next(critic.parameters()).device
    h = response_states(getattr(critic, critic.base_model_prefix), r, device)
    return critic.score(h).float().squeeze(-1) * r.response_mask.to(device)


def rl_forward(model: torch.nn.Module, r: Rollout, temperature: float, **kw) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return model(r.query_ids.to(device), r.query_mask.to(device), r.response_ids.to(device),
                 r.response_mask.to(device), temperature=temperature, **kw)


# ---- evaluation -----------------------------------------------------------------------------
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
    with autocast(cfg.compute, next(s.policy.parameters()).device):
        return _evaluate(s, cfg, seed)


def _evaluate(s: RLSetup, cfg: RLConfig, seed: int) -> dict:
    temperature = cfg.sampling.temperature
    r = generate(s.policy, s.tokenizer, s.eval_prompts, s.eval_ids, cfg.sampling, stop_ids=s.stop_ids, seed=seed)
    logp = r.logp if r.logp is not None else token_logprobs(s.policy, r, temperature)["logp"]
    kl = torch.full((len(r),), float("nan"))
    if s.ref is not None:
        ref_logp = reference_logprobs(s, r, temperature).to(logp.device)
        kl = (kl_estimate(logp, ref_logp, "k1") * r.response_mask).sum(1)
    if cfg.eval_temperature is not None and cfg.eval_temperature != temperature:
        other = cfg.sampling.model_copy(update={"temperature": cfg.eval_temperature})
        r = generate(s.policy, s.tokenizer, s.eval_prompts, s.eval_ids, other, stop_ids=s.stop_ids, seed=seed)
    scores, _ = score_rollout(s.scorer, r, s.eval_columns or None)
    return {"score": float(np.nanmean(scores)) if not np.isnan(scores).all() else float("nan"),
            "success": success_rate(r.texts, cfg.success_prefix),
            "response_len": float(r.lengths.mean()), "kl": float(kl.mean()), "samples": r.texts[:8],
            **(s.scorer.stats() if hasattr(s.scorer, "stats") else {})}


# ---- what an algorithm supplies -------------------------------------------------------------
class RLObjective(Protocol):
    name: str  # "PPO" / "GRPO": the run's title
    value_kind: str  # "none" | "head" | "critic"
    plot_keys: tuple[str, ...]

    def value_module(self) -> torch.nn.Module | None:
        """The value model trained with the policy (None for a critic-free algorithm)."""

    def rollout_indices(self, n_prompts: int, seed: int, it: int) -> np.ndarray:
        """Prompt index of every row of iteration `it` (all processes), a pure function of (seed, it)."""

    def prepare(self, loop: RLTrainer, r: Rollout, scores: torch.Tensor, keep: torch.Tensor,
                old: dict[str, torch.Tensor], ref_logp: torch.Tensor) -> dict[str, Any]:
        """The rollout's frozen update data (no grad): advantages, returns, ... and `mask` [B, T]
        (the response tokens of the kept rows). Statistics over the batch use `loop.sum` /
        `loop.gather`, so they are those of the whole batch over all processes."""

    def loss(self, cur: dict[str, torch.Tensor], data: dict[str, Any], i: torch.Tensor,
             n_rows: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of minibatch rows `i` (of `n_rows` on this process) from the current forward `cur`."""

    def end_iteration(self, loop: RLTrainer, data: dict[str, Any]) -> dict[str, float]:
        """After the updates: the objective's metrics (KL, explained variance, ...), and its own
        state moved on (PPO's adaptive KL coefficient, from the KL over all processes)."""

    def state(self) -> dict:
        """What a checkpoint must hold besides the weights (e.g. the adaptive KL coefficient)."""

    def load_state(self, state: dict) -> None: ...

    # True: `prepare` only stores `old["logp"]` as `data["old_logp"]` for the loss and the metrics, so
    # a one-step update may take it from its own forward (see `RLTrainer._old_from_update`)
    old_logp_in_loss_only: bool = False


@dataclass
class RLResult:
    model_dir: Path | None
    before: dict
    after: dict
    history: list[dict]
    counts: dict  # masked samples / skipped batches by reason


def prompt_batch(n_prompts: int, batch: int, seed: int, it: int) -> np.ndarray:
    """Prompt indices of an iteration: a pure function of (seed, iteration)."""
    return np.random.default_rng([seed, it]).choice(n_prompts, size=batch, replace=batch > n_prompts)


# ---- the loop -------------------------------------------------------------------------------
class RLTrainer(RunControl):
    def __init__(self, s: RLSetup, objective: RLObjective, cfg: RLConfig, output_dir: str | Path, seed: int = 0, *,
                 full_config=None, callbacks: Sequence[Callable[[RLTrainer], bool | None]] = ()):
        self.s, self.objective, self.cfg, self.seed = s, objective, cfg, seed
        self.out = Path(output_dir)
        self.callbacks = list(callbacks)
        use_threads(cfg.compute)
        self.accelerator = make_accelerator(cfg.compute, cfg.report_to, self.out)
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        self.is_main = self.accelerator.is_main_process
        if self.is_main:  # one run per folder (see `files.lock_folder`)
            lock_folder(self.out)
        if cfg.rollout_batch_size % self.world or cfg.minibatch_size % self.world:
            raise ValueError(f"rollout_batch_size ({cfg.rollout_batch_size}) and minibatch_size ({cfg.minibatch_size}) "
                             f"must be multiples of the number of processes ({self.world})")
        if cfg.compute.fsdp and self.world > 1:
            raise ValueError("compute.fsdp: PPO and GRPO replicate the policy on every process (each samples "
                             "its own rollouts with the whole model); set compute.fsdp=false for this stage")
        self.rows = cfg.rollout_batch_size // self.world  # this process's rows per iteration
        self.mb = min(cfg.minibatch_size // self.world, self.rows)
        if cfg.compute.gradient_checkpointing:
            enable_gradient_checkpointing(s.policy)
        device = self.accelerator.device
        if s.ref is not None and s.ref is not s.policy:
            s.ref.to(device)
        model = RLModel(s.policy, objective.value_module(), objective.value_kind)
        optimizer = build_optimizer(model.parameters(), cfg)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.out.mkdir(parents=True, exist_ok=True)
        sinks = (start_trackers(self.accelerator, cfg, self.out), plain_progress(self.out.name))
        self.log = MetricsLog(self.out / "metrics.jsonl", enabled=self.is_main, sinks=[s for s in sinks if s])
        n_mb = math.ceil(self.rows / self.mb)
        self.total_updates = cfg.iterations * cfg.epochs * n_mb
        self.state: dict[str, Any] = {"step": 0, "update": 0, "before": None, "history": [], "counts": {}}
        self._stop_requested = False
        if self.is_main:
            write_run_manifest(self.out, stage=objective.name.lower(), config=full_config or cfg,
                               init_from=s.policy.config._name_or_path)  # the folder it was loaded from

    @property
    def raw_optimizer(self) -> torch.optim.Optimizer:
        return getattr(self.optimizer, "optimizer", self.optimizer)

    # ---- agreement over the processes --------------------------------------------------
    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over the processes (a copy on one process)."""
        return self.accelerator.reduce(t.clone(), reduction="sum") if self.world > 1 else t

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Every process's rows, in rank order."""
        return self.accelerator.gather(t.contiguous()) if self.world > 1 else t

    # ---- checkpoints -------------------------------------------------------------------
    def save(self) -> None:
        self.accelerator.wait_for_everyone()
        state = {**self.state, "objective": self.objective.state()}
        path = self.out / "checkpoints" / f"step-{self.state['step']:07d}"
        save_checkpoint(path, self.model, self.raw_optimizer, state, is_main=self.is_main, trainable_only=True,
                        tokenizer=self.s.tokenizer)
        if self.is_main:
            prune_checkpoints(self.out, 2)
        self.accelerator.wait_for_everyone()

    def resume(self) -> bool:
        path = latest_checkpoint(self.out)
        if path is None:
            self.log.truncate_after(0)  # a fresh run starts its log afresh
            return False
        st = load_checkpoint(path, self.model, self.raw_optimizer)
        self.objective.load_state(st.pop("objective"))
        self.state = st
        self.log.truncate_after(self.state["step"])
        return True

    # ---- one iteration -------------------------------------------------------------------
    def _scores(self, r: Rollout, it: int, columns: dict | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(scores, rows to keep) of this process's rollout, or None to skip the iteration on every
        process. Bad rewards / empty batches stop (with the reason) or are masked out and counted,
        per `on_bad_reward`; never trained on."""
        cfg, counts = self.cfg, self.state["counts"]
        empty = all(not t.strip() for t in r.texts)
        scores, unscored = (np.zeros(len(r)), np.zeros(len(r), dtype=bool)) if empty else score_rollout(
            self.s.scorer, r, columns, missing_eos_penalty=cfg.missing_eos_penalty, length_penalty=cfg.length_penalty)
        n_unscored = int(self.sum(torch.tensor(float(unscored.sum()))).item())
        if n_unscored:  # no source rewarded them (every source said None): left out, counted
            counts["unscored"] = counts.get("unscored", 0) + n_unscored
        scores = np.where(unscored, 0.0, scores)
        finite = np.isfinite(scores) & (not empty) & ~unscored
        flags = self.sum(torch.tensor([float(empty), float((~np.isfinite(scores)).sum()) * (not empty),
                                       float(finite.any())]))
        n_empty, n_bad, n_usable = (int(x) for x in flags.tolist())
        if n_empty:
            msg = f"iteration {it}: every response in the batch is empty"
            if cfg.on_bad_reward == "stop":
                raise RLStabilityError(msg + " (set on_bad_reward=skip to skip such batches)")
            counts["empty_batches"] = counts.get("empty_batches", 0) + n_empty
        if n_bad:
            if cfg.on_bad_reward == "stop":
                raise RLStabilityError(f"iteration {it}: {n_bad} of {cfg.rollout_batch_size} rewards are NaN/inf: "
                                       "stopping instead of training on them (set on_bad_reward=skip to drop such samples)")
            counts["nonfinite_rewards"] = counts.get("nonfinite_rewards", 0) + n_bad
        if n_usable < self.world or n_empty:  # a process without a usable row: skip everywhere
            counts["skipped_iterations"] = counts.get("skipped_iterations", 0) + 1
            return None
        return torch.as_tensor(np.where(finite, scores, 0.0), dtype=torch.float32), torch.from_numpy(finite)

    def _mask_truncated(self, r: Rollout, data: dict) -> None:
        """Completions the length limit cut keep their place in the batch statistics but get no
        loss (DAPO's overlong filtering, TRL's `mask_truncated_completions`); counted."""
        cut = ~r.stopped.to(data["mask"].device)
        n_cut = int(self.sum(torch.tensor(float((cut & (data["mask"].sum(1) > 0)).sum()))).item())
        if n_cut:
            counts = self.state["counts"]
            counts["truncated_masked"] = counts.get("truncated_masked", 0) + n_cut
        data["mask"] = data["mask"] * (~cut)[:, None]

    def _old_from_update(self, r: Rollout) -> bool:
        """One optimizer step over the whole rollout: the policy the update's forward runs is the
        one that sampled, so its detached log-probs are log pi_old exactly (at the update's
        precision) and the no-grad pass for them is saved. Only for an objective that reads log
        pi_old in its loss and metrics alone, and with no value head (its values need that pass)."""
        return (self.cfg.epochs == 1 and self.mb >= len(r) and self.objective.value_kind == "none"
                and getattr(self.objective, "old_logp_in_loss_only", False))

    def _update(self, r: Rollout, data: dict, it: int) -> dict[str, list[float]]:
        cfg, temperature = self.cfg, self.cfg.sampling.temperature
        old_from_update = self._old_from_update(r)
        stats: dict[str, list[float]] = {}
        g = torch.Generator().manual_seed(seed_for("rl_minibatches", self.seed, it))
        params = [p for p in self.model.parameters() if p.requires_grad]
        for _ in range(cfg.epochs):
            perm = torch.randperm(len(r), generator=g)
            for b in range(0, len(r), self.mb):
                i = perm[b : b + self.mb]
                cur = rl_forward(self.model, r.select(i), temperature, entropy=True,
                                 values=self.objective.value_kind != "none")
                if old_from_update:
                    data["old_logp"][i.to(data["old_logp"].device)] = cur["logp"].detach()
                loss, st = self.objective.loss(cur, data, i.to(data["mask"].device), len(r))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss ({loss.item()}) at iteration {it}: stopping instead of "
                                             "training on NaN (lower lr, check the reward)")
                lr = scheduled_lr(self.state["update"], cfg, self.total_updates)
                set_lr(self.optimizer, lr)
                self.optimizer.zero_grad(set_to_none=True)
                self.accelerator.backward(loss)
                gn = (self.accelerator.clip_grad_norm_(params, cfg.max_grad_norm) if cfg.max_grad_norm
                      else torch.zeros(()))
                self.optimizer.step()
                self.state["update"] += 1
                for k, v in {"grad_norm": float(gn), **st}.items():
                    stats.setdefault(k, []).append(float(v))
        stats["lr"] = [lr]  # the last update's
        return stats

    def _mean_over_processes(self, rec: dict[str, float]) -> dict[str, float]:
        if self.world == 1:
            return rec
        keys = sorted(rec)
        vals = self.sum(torch.tensor([rec[k] for k in keys], dtype=torch.float64, device=self.accelerator.device))
        return {k: v / self.world for k, v in zip(keys, vals.tolist(), strict=True)}

    def iteration(self, it: int) -> dict | None:
        s, cfg, temperature = self.s, self.cfg, self.cfg.sampling.temperature
        t0 = time.perf_counter()
        idx = self.objective.rollout_indices(len(s.train_ids), self.seed, it)[self.rank * self.rows:
                                                                               (self.rank + 1) * self.rows]
        policy = self.accelerator.unwrap_model(self.model).policy
        with autocast(cfg.compute, self.accelerator.device):  # the precision the updates' forward passes use
            r = generate(policy, s.tokenizer, [s.train_prompts[i] for i in idx], [s.train_ids[i] for i in idx],
                         cfg.sampling, stop_ids=s.stop_ids,
                         seed=seed_for("rl_rollouts", self.seed, it, self.world, self.rank))
        t_gen = time.perf_counter() - t0
        scored = self._scores(r, it, rows_of(s.train_columns, idx))
        if scored is None:
            return None
        scores, keep = scored
        source_stats = s.scorer.stats() if hasattr(s.scorer, "stats") else {}  # each reward source, this rollout
        # the rollout's figures are the sampled answers' (as TRL logs them), before DAPO masks or replaces groups
        kept = [t for t, k in zip(r.texts, keep.tolist(), strict=True) if k]
        sampled = {"reward_mean": float(scores[keep].mean()), "reward_std": float(scores[keep].std(unbiased=False)),
                   "response_len": float(r.lengths[keep].mean()), "success": success_rate(kept, cfg.success_prefix)}
        if getattr(cfg, "dynamic_sampling", "off") != "off":  # DAPO: groups with all-equal rewards
            r, scores, keep = apply_dynamic_sampling(self, r, scores, keep, it)
            sampled["trained_rows"] = float(keep.float().mean())  # the share of the batch the update learns from
        device = self.accelerator.device
        with torch.no_grad(), autocast(cfg.compute, device):
            # The sampling pass's log-probs are log pi_old only in fp32: in bf16 its incremental (KV
            # cache) forward rounds differently from the full forward the update runs, so pi_old is recomputed.
            exact = self.cfg.compute.mixed_precision == "no" and self.cfg.compute.dtype == "float32"
            if self._old_from_update(r):  # filled in by the update's forward (`_update`)
                old = {"logp": torch.zeros(r.response_ids.shape, device=device)}
            elif self.objective.value_kind == "head" or r.logp is None or not exact:
                old = rl_forward(self.model, r, temperature, values=self.objective.value_kind != "none")
            else:  # log pi_old from the sampling pass: only the critic (if any) runs
                old = {"logp": r.logp.to(device)}
                if self.objective.value_kind == "critic":
                    old["values"] = rl_forward(self.model, r, temperature, values=True, logp=False)["values"]
            # an objective that never reads the reference (GRPO with beta 0, as TRL skips its ref model) saves the pass
            ref_logp = (reference_logprobs(s, r, temperature).to(device) if getattr(self.objective, "needs_reference", True)
                        else torch.zeros_like(old["logp"]))
            data = self.objective.prepare(self, r, scores.to(device), keep.to(device), old, ref_logp)
            if getattr(cfg, "mask_truncated", False):  # DAPO's overlong filtering: cut completions carry no loss
                self._mask_truncated(r, data)
        stats = self._update(r, data, it)
        mask = data["mask"]
        n_tokens = float(mask.sum())
        rec = {**sampled, "rollout_tokens_per_s": n_tokens / max(t_gen, 1e-9), **self.objective.end_iteration(self, data),
               **source_stats, **{k: float(np.mean(v)) for k, v in stats.items()}}
        rec = self._mean_over_processes(rec)
        rec["rollout_tokens_per_s"] *= self.world
        rec["iteration_s"] = time.perf_counter() - t0
        return rec

    # ---- the run -----------------------------------------------------------------------
    def fit(self, save: bool = True) -> RLResult:
        self.resume()
        # The evaluation before training takes a while too: a SIGTERM then checkpoints (step 0, with
        # the evaluation) and returns, as in the shared loop, instead of dying with nothing saved.
        with self.sigterm_stops():
            if self.state["before"] is None:
                self.state["before"] = distributed.on_main(evaluate_policy, self.s, self.cfg, seed_for("rl_heldout", self.seed))
            stopped = self.checkpoint_or_stop(self.state["step"], None) or self._iterate()
        if self.cfg.report_to:
            self.accelerator.end_training()
        if stopped:
            return RLResult(None, self.state["before"], {}, self.state["history"], self.state["counts"])
        return self.conclude(save)

    def _iterate(self) -> bool:
        """The iterations left; True when stopped early (after a checkpoint)."""
        cfg = self.cfg
        bar = tqdm(range(self.state["step"], cfg.iterations), desc=self.objective.name.lower(),
                   disable=None if self.is_main else True, dynamic_ncols=True)
        self.model.train()
        try:
            for it in bar:
                rec = self.iteration(it)
                self.state["step"] = it + 1
                if rec is not None:
                    rec = {"step": it + 1, **rec}
                    self.log.write(rec)
                    self.state["history"].append(rec)
                    bar.set_postfix(reward=f"{rec['reward_mean']:.3f}", kl=f"{rec.get('kl', float('nan')):.3f}")
                if self.state["step"] < cfg.iterations and self.checkpoint_or_stop(self.state["step"], cfg.save_every):
                    return True
        finally:
            bar.close()
        return False

    def conclude(self, save: bool) -> RLResult:
        """The held-out evaluation after training (same prompts and seed as before it), the model
        saved (LoRA merged) when `save`, `summary.json`."""
        s = self.s
        after = distributed.on_main(evaluate_policy, s, self.cfg, seed_for("rl_heldout", self.seed))
        model_dir = self.out / "model" if save else None
        if self.is_main:
            # before the model's completion marker: a complete model always has its summary
            write_json(self.out / "summary.json", {"before": self.state["before"], "after": after,
                                                   "counts": self.state["counts"],
                                                   "iterations": len(self.state["history"])})
            if save:
                if s.lora:  # merged in place (the run is over, no extra copy): the setup loses its reference
                    s.policy, s.ref = merge_lora(s.policy, self.out, self.cfg.lora.save, s.tokenizer), None

                def write(d: Path) -> None:
                    s.policy.save_pretrained(d, safe_serialization=True)
                    s.tokenizer.save_pretrained(d)
                    write_model_card(d, name=model_dir)

                write_complete(model_dir, write, kept=kept_note(self.out))
                plot_metrics(self.log.path, self.out / "rl_metrics.png", keys=self.objective.plot_keys + tuple(
                    s.scorer.plot_keys() if hasattr(s.scorer, "plot_keys") else ()),
                             title=self.objective.name, separate=True)  # one panel per series: scales differ
        self.accelerator.wait_for_everyone()
        return RLResult(model_dir, self.state["before"], after, self.state["history"], self.state["counts"])


def stop_after_iteration(k: int) -> Callable[[RLTrainer], bool]:
    """Callback that stops (with a checkpoint) once `k` iterations are done."""
    return lambda trainer: trainer.state["step"] >= k
