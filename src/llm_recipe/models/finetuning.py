"""Preparing a loaded causal LM for fine-tuning, and saving it afterwards; shared by SFT, DPO,
PPO and GRPO so all four use and save adapters the same way.

    disable_dropout(model)     dropout off: log-prob comparisons (DPO, PPO ratios, KL) stay exact
    with_lora(model, lora)     trainable LoRA adapters via peft, base weights frozen
    merge_lora(model, out)     adapters saved to `out/adapter`, then merged into a plain model
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..config import LoRAConfig


def disable_dropout(model: torch.nn.Module) -> None:
    """Objectives that compare log-probs of two passes (policy vs reference, old vs new policy)
    would see dropout noise as signal; TRL's DPO/PPO/GRPO turn it off too."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def with_lora(model, lora: LoRAConfig):
    """The model wrapped with trainable LoRA adapters (base weights frozen), via peft."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                            target_modules=lora.target_modules, task_type="CAUSAL_LM"))


def merge_lora(model, out_dir: str | os.PathLike):
    """A peft model: its adapters saved alone to `out_dir/adapter`, then merged in place into the
    base weights, so the saved model loads anywhere without peft. Other models pass through."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return model
    model.save_pretrained(Path(out_dir) / "adapter")
    return model.merge_and_unload()
