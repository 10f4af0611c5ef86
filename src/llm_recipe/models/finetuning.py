"""Preparing a loaded causal LM for fine-tuning, and saving it afterwards; shared by SFT, DPO,
PPO and GRPO so all four use and save adapters the same way.

    disable_dropout(model)     dropout off: log-prob comparisons (DPO, PPO ratios, KL) stay exact
    with_lora(model, lora)     trainable LoRA adapters via peft, base weights frozen
    merge_lora(model, out, save)   adapters (with the tokenizer) saved to `out/adapter` and/or merged
    load_adapter_merged(dir)       an adapter folder onto its base, merged: a plain model
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


def merge_lora(model, out_dir: str | os.PathLike, save: str = "both", tokenizer=None):
    """A peft model as `lora.save` says: `both` (default) saves the adapter with its tokenizer to
    `out_dir/adapter` (loadable by peft alone) and returns the model merged in place into the base
    weights (saved as a plain model, loadable without peft); `merged` only merges; `adapter` saves
    the adapter and returns the unmerged model (its `save_pretrained` writes an adapter folder).
    Other models pass through."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return model
    if save in ("both", "adapter"):
        model.save_pretrained(Path(out_dir) / "adapter")
        if tokenizer is not None:  # the adapter's own vocabulary (a chat format's added tokens)
            tokenizer.save_pretrained(Path(out_dir) / "adapter")
    return model if save == "adapter" else model.merge_and_unload()


ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file() and not (Path(path) / "config.json").is_file()


def load_adapter_merged(adapter_dir: str | os.PathLike, base: str | os.PathLike | None = None,
                        dtype: torch.dtype = torch.float32):
    """A LoRA adapter folder loaded onto its base (`base_model_name_or_path`, or `base`) and merged:
    a plain model. The base's embeddings are resized first to the adapter's tokenizer when it
    brings one (a chat format's added tokens, trained as peft trainable tokens)."""
    import json

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir = Path(adapter_dir)
    base = base or json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise FileNotFoundError(f"{adapter_dir}: the adapter names no base model; give one (--base)")
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype)
    if any((adapter_dir / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        n = len(AutoTokenizer.from_pretrained(adapter_dir))
        if n != model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(n)
    return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
