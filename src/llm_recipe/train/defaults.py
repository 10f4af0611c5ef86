"""Training defaults that fit the model being trained.

The stage sections' own defaults (`config/stages.py`) are sized for the models this recipe trains
from scratch: a few million parameters, high learning rates, a few hundred steps. On a released
model those values destroy what it knows (16 full-fine-tuning DPO steps at 2e-5 turned
SmolLM2-135M's answers into "Mmmmmm..."). So when a stage starts from a model of at least
`RELEASED_PARAMS` parameters, every field of `RELEASED` that the user did not set (in the YAML or
with --set) takes the field's usual value (TRL 1.16's defaults; LoRA rates as TRL's docs use
them), and the stage logs what it applied and records it in run.json. A learning rate the user
did set that is known to wreck a released model under full fine-tuning gets a warning.

A preset (`dpo.preset: small-data`, `llm-recipe dpo --preset small-data`) is a named set of
values for the fields the user did not set, applied before the released-model values. The
small-data values are the SmolLM2 recipe's DPO section (`recipes/smollm2.yaml`: LoRA r 16, lr 5e-4
x 40 steps, NLL term; measured there on seed 0: the prefix on 100% of held-out answers, against 0%
at lr 1e-4 x 30). `benchmarks/small_data_defaults.py` compares them with the released-model
defaults and alternatives on held-out prompts over seeds; it has not been run yet, so they are the
recipe's values, not that benchmark's winner.

Once the loop has resolved the run (`epochs` -> steps), `run_length_warning` says in one line
when it is too short to train: fewer than `MIN_STEPS` optimizer steps, or, on a released model,
lr x steps too small to move its weights (`MIN_LR_STEPS`).

    fit_stage(stage, cfg, model, lora)       -> (cfg, {field: value applied}), both logged
    fit_to_model(stage, cfg, n_params, lora) -> the same from a parameter count
    apply_preset(stage, cfg)                 -> (cfg, {field: value}) from `cfg.preset`
    lr_warning(stage, cfg, n_params, lora)   -> the warning line, or None
    run_length_warning(...)                  -> the warning line, or None
"""

from __future__ import annotations

import math

from .. import console
from ..config import LoRAConfig

RELEASED_PARAMS = 50_000_000  # our presets are <= 30M; SmolLM2-135M and up are released models
RELEASED = {
    # full fine-tuning values; epochs instead of steps, as TRL counts them
    "sft": {"lr": 2e-5, "epochs": 3.0, "max_length": 1024, "warmup_steps": 0},
    "rm": {"lr": 1e-5, "epochs": 1.0, "max_length": 1024, "warmup_steps": 0},  # RMs overfit after one epoch
    "dpo": {"lr": 1e-6, "epochs": 3.0, "max_length": 1024, "warmup_steps": 0},
    "ppo": {"lr": 1e-6},
    "grpo": {"lr": 1e-6},
    "rloo": {"lr": 1e-6},
    "reinforce_pp": {"lr": 1e-6},
}
LORA_LR = {"sft": 2e-4, "rm": 1e-4, "dpo": 5e-6, "ppo": 1e-5, "grpo": 1e-5, "rloo": 1e-5, "reinforce_pp": 1e-5}
# Full fine-tuning above these rates moves a released model far from what it was (warned).
MAX_SAFE_LR = {"sft": 1e-4, "rm": 1e-4, "dpo": 1e-5, "ppo": 1e-5, "grpo": 1e-5, "rloo": 1e-5, "reinforce_pp": 1e-5}


# Named presets: stage -> the values they give the fields the user did not set.
PRESETS = {
    "small-data": {
        # recipes/smollm2.yaml's DPO values: benchmarks/small_data_defaults.py's winner (README: small-data-defaults)
        "dpo": {"lora": {"r": 16, "alpha": 32}, "lr": 5e-4, "sft_alpha": 1.0, "batch_size": 8, "max_steps": 40,
                "warmup_steps": 3},
    },
}
MIN_STEPS = 50  # fewer optimizer steps than this: warned (the warmup and schedule barely run)
# AdamW moves a weight by at most about lr per step, so lr x steps bounds how far any weight can move.
# A released model's weights are O(1e-2) (SmolLM2-135M: std 0.02-0.07 per matrix); below these
# products no weight moves by more than ~1% of a typical one. Reported in issue #33: DPO on SmolLM2 at
# the released defaults (lr 1e-6, 3 steps: 3e-6) returned answers word for word the base model's.
# A LoRA update starts from B = 0, hence its higher bound.
MIN_LR_STEPS = {"full": 1e-4, "lora": 1e-3}
STAGE_OF = {"PretrainConfig": "pretrain", "SFTConfig": "sft", "RMConfig": "rm", "DPOConfig": "dpo",
            "OnlineDPOConfig": "online_dpo"}


def is_released(n_params: int) -> bool:
    return n_params >= RELEASED_PARAMS


def fit_to_model(stage: str, cfg, n_params: int, lora: bool):
    """`cfg` with the released-model values for the fields the user left at their defaults."""
    if not is_released(n_params):
        return cfg, {}
    wanted = dict(RELEASED[stage])
    if lora:
        wanted["lr"] = LORA_LR[stage]
    if "epochs" in wanted and "max_steps" in cfg.model_fields_set:
        del wanted["epochs"]  # the user counts steps
    applied = {k: v for k, v in wanted.items() if k not in cfg.model_fields_set and k in type(cfg).model_fields}
    return (cfg.model_copy(update=applied) if applied else cfg), applied


def apply_preset(stage: str, cfg):
    """`cfg` with its preset's values for the fields the user did not set (they then count as set)."""
    name = getattr(cfg, "preset", None)
    if name is None:
        return cfg, {}
    wanted = dict(PRESETS[name].get(stage, {}))
    if "epochs" in cfg.model_fields_set:
        wanted.pop("max_steps", None)  # the user counts epochs
    applied = {k: v for k, v in wanted.items() if k not in cfg.model_fields_set}
    update = {k: LoRAConfig(**v) if k == "lora" else v for k, v in applied.items()}  # a section: its own type
    return (cfg.model_copy(update=update) if applied else cfg), applied


def run_length_warning(stage: str, cfg, max_steps: int, n_examples: int, steps_per_epoch: float, n_params: int,
                       lora: bool) -> str | None:
    """One line when the resolved run is too short to train (`MIN_STEPS`, `MIN_LR_STEPS`), with what
    to change; None when it is not."""
    few = max_steps < MIN_STEPS
    bound = MIN_LR_STEPS["lora" if lora else "full"]
    weak = is_released(n_params) and cfg.lr * max_steps < bound
    if not (few or weak):
        return None
    epochs = f", {cfg.epochs:g} epochs" if cfg.epochs is not None else ""
    rows = "packed rows" if getattr(cfg, "packing", False) else "examples"  # SFT packs examples into rows
    what = [f"{max_steps} optimizer steps ({n_examples} {rows}, batch {cfg.batch_size} x grad_accum "
            f"{cfg.grad_accum}{epochs})"]
    if weak:
        what.append(f"lr {cfg.lr:g} x {max_steps} steps = {cfg.lr * max_steps:.1g} < {bound:g}: too little to move a "
                    f"{n_params / 1e6:.0f}M-parameter model{' (LoRA)' if lora else ''}")
    fix = []
    if few:
        need = math.ceil(MIN_STEPS / max(steps_per_epoch, 1e-9))
        fix.append(f"{stage}.epochs={need}" if cfg.epochs is not None else f"{stage}.max_steps={MIN_STEPS}")
    if weak:
        fix.append(f"a higher {stage}.lr")
    if stage in ("dpo", "online_dpo") and is_released(n_params) and getattr(cfg, "preset", None) is None:
        fix.append("or --preset small-data (LoRA, higher lr, NLL term)")
    return f"{stage}: {'; '.join(what)}; set {', '.join(fix)}"


def lr_warning(stage: str, cfg, n_params: int, lora: bool) -> str | None:
    if lora or not is_released(n_params) or cfg.lr <= MAX_SAFE_LR[stage]:
        return None
    return (f"{stage}.lr={cfg.lr:g} on a {n_params / 1e6:.0f}M-parameter model: full fine-tuning at this rate "
            f"is known to destroy a released model (the field uses {RELEASED[stage]['lr']:g}; LoRA "
            f"{LORA_LR[stage]:g})")


def fit_stage(stage: str, cfg, model, lora: bool):
    """The stage's config fitted to `model` (counted before LoRA is attached); logs what changed."""
    # imported here: the CLI imports this module for --help, which must not load transformers
    from ..models.presets import count_parameters

    n_params = count_parameters(model)
    cfg, preset = apply_preset(stage, cfg)
    if preset:
        console.log(f"{stage}: preset {cfg.preset}: " + ", ".join(f"{k}={v}" for k, v in preset.items()))
        lora = lora or getattr(cfg, "lora", None) is not None
    cfg, applied = fit_to_model(stage, cfg, n_params, lora)
    if applied:
        console.log(f"{stage}: a released model ({n_params / 1e6:.0f}M parameters): "
                    + ", ".join(f"{k}={v:g}" for k, v in applied.items())
                    + f" (the field's defaults; set {stage}.<field> to choose)")
    if warning := lr_warning(stage, cfg, n_params, lora):
        console.log(f"warning: {warning}")
    return cfg, {**preset, **applied}
