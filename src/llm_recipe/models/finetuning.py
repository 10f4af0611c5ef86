"""Preparing a loaded causal LM for fine-tuning, and saving it afterwards; shared by SFT, DPO,
PPO and GRPO so all four use and save adapters the same way.

    disable_dropout(model)     dropout off: log-prob comparisons (DPO, PPO ratios, KL) stay exact
    with_lora(model, lora)     trainable LoRA adapters via peft, base weights frozen
    merge_lora(model, out)     adapters saved to `out/adapter`, then merged into a plain model
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..config import LoRAConfig


def disable_dropout(model: torch.nn.Module) -> None:
    """Objectives that compare log-probs of two passes (policy vs reference, old vs new policy)
    would see dropout noise as signal; TRL's DPO/PPO/GRPO turn it off too."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def with_lora(model, lora: LoRAConfig, new_token_ids: Sequence[int] = (), seed: int = 0):
    """The model wrapped with trainable LoRA adapters (base weights frozen), via peft.

    `new_token_ids`: tokens added for this run (a chat format's markers) have untrained embedding
    rows; those rows (and the LM head's, when it is not tied to the embedding) are trained too,
    through peft's trainable tokens, and merged like the adapters. Without it the model could never
    learn to read or emit the new markers, and nothing would say so."""
    from peft import LoraConfig, get_peft_model

    kw = {}
    if new_token_ids:
        if "trainable_token_indices" not in inspect.signature(LoraConfig).parameters:
            raise ValueError("LoRA with added tokens needs peft >= 0.15 (trainable_token_indices); "
                             "upgrade peft, or pick a chat format the tokenizer already has")
        ids = sorted(set(int(i) for i in new_token_ids))
        layers = {_module_name(model, model.get_input_embeddings()): ids}
        head = model.get_output_embeddings()
        if head is not None and not getattr(model.config, "tie_word_embeddings", False):
            layers[_module_name(model, head)] = ids
        kw["trainable_token_indices"] = layers
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="CAUSAL_LM", **kw)
    # The adapters' random init from `seed`, not from whatever the process drew before: a run
    # gives the same adapters (and the same trained model) whatever ran earlier in its process.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def _module_name(model, module) -> str:
    """The last component of `module`'s name in `model` (what peft matches layer names by)."""
    return next(name for name, m in model.named_modules() if m is module).rsplit(".", 1)[-1]


def merge_lora(model, out_dir: str | os.PathLike):
    """A peft model: its adapters saved alone to `out_dir/adapter`, then merged in place into the
    base weights, so the saved model loads anywhere without peft. Other models pass through."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return model
    model.save_pretrained(Path(out_dir) / "adapter")
    return model.merge_and_unload()
