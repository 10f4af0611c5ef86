"""Training defaults that fit the model being trained.

The stage sections' own defaults (`config/stages.py`) are sized for the models this recipe trains
from scratch: a few million parameters, high learning rates, a few hundred steps. On a released
model those values destroy what it knows (16 full-fine-tuning DPO steps at 2e-5 turned
SmolLM2-135M's answers into "Mmmmmm..."). So when a stage starts from a model of at least
`RELEASED_PARAMS` parameters, every field of `RELEASED` that the user did not set (in the YAML or
with --set) takes the field's usual value (TRL 1.16's defaults; LoRA rates as TRL's docs use
them), and the stage logs what it applied and records it in run.json. A learning rate the user
did set that is known to wreck a released model under full fine-tuning gets a warning.

    fit_stage(stage, cfg, model, lora)       -> (cfg, {field: value applied}), both logged
    fit_to_model(stage, cfg, n_params, lora) -> the same from a parameter count
    lr_warning(stage, cfg, n_params, lora)   -> the warning line, or None
"""

from __future__ import annotations

from .. import console

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
    cfg, applied = fit_to_model(stage, cfg, n_params, lora)
    if applied:
        console.log(f"{stage}: a released model ({n_params / 1e6:.0f}M parameters): "
                    + ", ".join(f"{k}={v:g}" for k, v in applied.items())
                    + f" (the field's defaults; set {stage}.<field> to choose)")
    if warning := lr_warning(stage, cfg, n_params, lora):
        console.log(f"warning: {warning}")
    return cfg, applied
