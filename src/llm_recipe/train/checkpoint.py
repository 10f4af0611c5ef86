"""Training checkpoints: an HF model directory plus everything needed to resume exactly.

Layout of `checkpoints/step-000100/`:
  config.json, model.safetensors   -> loadable with `from_pretrained` on its own
  (LoRA: adapter_config.json, adapter_model.safetensors -> `PeftModel.from_pretrained` on the base)
  optimizer.pt                     -> optimizer state keyed by parameter name (tensors and plain
                                      values only; loaded weights_only=True)
  rng.pt                           -> torch CPU (and CUDA) generator states
  trainer_state.json               -> step, data position, python/numpy RNG, metrics so far
Writes go to a temp directory renamed into place (`files.write_complete`), so a crash or a full
disk mid-save leaves no half checkpoint, and the previous one stays.
Model and optimizer state are full (unsharded), so a run can resume on another number of
processes, sharded (FSDP) or not.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from ..files import read_json, write_complete
from .sharding import full_state_dicts, load_full_state_dicts

CKPT_PREFIX = "step-"
TRAINABLE_FILE = "trainable.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"  # what peft's save_pretrained writes for a LoRA model


def _rng_state() -> tuple[dict, dict]:
    np_state = np.random.get_state()
    json_part = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    tensor_part = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensor_part["cuda"] = torch.cuda.get_rng_state_all()
    return json_part, tensor_part


def _restore_rng(json_part: dict, tensor_part: dict) -> None:
    v, state, gauss = json_part["python"]
    random.setstate((v, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = json_part["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensor_part["torch"])
    if "cuda" in tensor_part and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensor_part["cuda"])


def save_checkpoint(out_dir: Path, model, optimizer, state: dict, *, is_main: bool = True,
                    trainable_only: bool = False, tokenizer=None) -> Path:
    """Save to `out_dir` atomically (sibling temp dir, then rename). Every process calls it (the
    full state of a sharded model is gathered collectively); the main process writes.
    `trainable_only`: only the parameters being trained (`trainable.safetensors`: LoRA adapters, a
    value head), for runs that rebuild the rest from their starting model (RL). `tokenizer` is saved
    with it, so a checkpoint loads on its own (`from_pretrained(checkpoint)`)."""
    if trainable_only:
        core = unwrap(model)
        model_sd = {n: p.detach().cpu().contiguous() for n, p in core.named_parameters() if p.requires_grad}
        optim_sd = get_optimizer_state_dict(core, optimizer)
    else:
        model_sd, optim_sd = full_state_dicts(model, optimizer)
    out_dir = Path(out_dir)
    if not is_main:
        return out_dir
    rng_json, rng_tensors = _rng_state()

    def write(tmp: Path) -> None:
        if trainable_only:
            save_file(model_sd, str(tmp / TRAINABLE_FILE))
        else:
            unwrap(model).save_pretrained(tmp, state_dict=model_sd, safe_serialization=True)
        torch.save(optim_sd, tmp / "optimizer.pt")
        torch.save(rng_tensors, tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({**state, "rng": rng_json}, indent=1))
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)

    return write_complete(out_dir, write, kept=kept_note(out_dir.parent.parent))


def _trainer_state(ckpt_dir: Path) -> dict:
    """The checkpoint's trainer state, with the RNG states it saved restored."""
    state = read_json(ckpt_dir / "trainer_state.json")
    _restore_rng(state.pop("rng"), torch.load(ckpt_dir / "rng.pt", weights_only=True))
    return state


def load_checkpoint(ckpt_dir: Path, model, optimizer) -> dict:
    """Restore model, optimizer and RNG states in place (each process its own shard of a sharded
    model); return the trainer state."""
    ckpt_dir = Path(ckpt_dir)
    if (ckpt_dir / TRAINABLE_FILE).exists():
        return _load_trainable(ckpt_dir, model, optimizer)
    if (ckpt_dir / ADAPTER_FILE).exists() and not (ckpt_dir / "model.safetensors").exists():
        return _load_adapter(ckpt_dir, model, optimizer)
    weights = load_file(ckpt_dir / "model.safetensors")
    core = unwrap(model)
    expected = set(get_model_state_dict(model).keys())
    tied = set(getattr(core, "_tied_weights_keys", None) or [])
    tied |= {"lm_head.weight"} if getattr(core.config, "tie_word_embeddings", False) else set()
    missing, unexpected = expected - set(weights) - tied, set(weights) - expected
    if missing or unexpected:
        raise RuntimeError(
            f"{ckpt_dir}: checkpoint does not match the model (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    optim_sd = torch.load(ckpt_dir / "optimizer.pt", weights_only=True)
    load_full_state_dicts(model, optimizer, weights, optim_sd)
    if hasattr(core, "tie_weights"):
        core.tie_weights()
    return _trainer_state(ckpt_dir)


def _load_adapter(ckpt_dir: Path, model, optimizer) -> dict:
    """A LoRA run's checkpoint: the adapter as peft saved it (the frozen base is the run's starting
    model, loaded again by the resuming run), the optimizer state of the trainable parameters."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    core = unwrap(model)
    weights = load_file(ckpt_dir / ADAPTER_FILE)
    expected = set(get_peft_model_state_dict(core))
    if set(weights) != expected:
        raise RuntimeError(f"{ckpt_dir}: checkpoint does not match the adapter being trained "
                           f"(missing {sorted(expected - set(weights))[:3]}, unexpected {sorted(set(weights) - expected)[:3]})")
    set_peft_model_state_dict(core, weights)
    optim_sd = torch.load(ckpt_dir / "optimizer.pt", weights_only=True)
    set_optimizer_state_dict(model, optimizer, optim_sd, options=StateDictOptions(full_state_dict=True, strict=False))
    return _trainer_state(ckpt_dir)


def _load_trainable(ckpt_dir: Path, model, optimizer) -> dict:
    core = unwrap(model)
    weights = load_file(ckpt_dir / TRAINABLE_FILE)
    trainable = {n for n, p in core.named_parameters() if p.requires_grad}
    if set(weights) != trainable:
        raise RuntimeError(f"{ckpt_dir}: checkpoint does not match the trained parameters "
                           f"(missing {sorted(trainable - set(weights))[:3]}, unexpected {sorted(set(weights) - trainable)[:3]})")
    core.load_state_dict(weights, strict=False)
    set_optimizer_state_dict(core, optimizer, torch.load(ckpt_dir / "optimizer.pt", weights_only=True))
    return _trainer_state(ckpt_dir)


def unwrap(model):
    """The model inside a DDP wrapper (an FSDP2 model is its own module)."""
    return getattr(model, "module", model)


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((Path(run_dir) / "checkpoints").glob(f"{CKPT_PREFIX}[0-9]*[0-9]"))
    return ckpts[-1] if ckpts else None


def kept_note(run_dir: Path) -> str:
    """What a failed save leaves to resume from (`files.write_complete`'s message)."""
    last = latest_checkpoint(run_dir)
    if last is None:
        return "kept: no checkpoint yet (the same command starts the run over)"
    return f"kept: the last complete checkpoint {last.name} (the same command resumes from it)"


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    ckpts = sorted((Path(run_dir) / "checkpoints").glob(f"{CKPT_PREFIX}[0-9]*[0-9]"))
    for old in ckpts[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
