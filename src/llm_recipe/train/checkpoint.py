"""Training checkpoints: an HF model directory plus everything needed to resume exactly.

Layout of `checkpoints/step-000100/`:
  config.json, model.safetensors   -> loadable with `from_pretrained` on its own
  optimizer.pt                     -> optimizer state (tensors only; loaded weights_only=True)
  rng.pt                           -> torch CPU (and CUDA) generator states
  trainer_state.json               -> step, data position, python/numpy RNG, metrics so far
Writes go to a temp directory renamed into place, so a crash mid-save leaves no half checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

CKPT_PREFIX = "step-"


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


def save_checkpoint(out_dir: Path, model, optimizer, state: dict) -> Path:
    """Save to `out_dir` atomically (sibling temp dir, then rename)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    rng_json, rng_tensors = _rng_state()
    torch.save(rng_tensors, tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({**state, "rng": rng_json}, indent=1))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def load_checkpoint(ckpt_dir: Path, model, optimizer) -> dict:
    """Restore model, optimizer and RNG states in place; return the trainer state."""
    ckpt_dir = Path(ckpt_dir)
    weights = load_file(ckpt_dir / "model.safetensors")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    tied |= {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if unexpected or set(missing) - tied:
        raise RuntimeError(
            f"{ckpt_dir}: checkpoint does not match the model (missing {sorted(set(missing) - tied)[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    model.tie_weights()
    optimizer.load_state_dict(torch.load(ckpt_dir / "optimizer.pt", weights_only=True))
    state = json.loads((ckpt_dir / "trainer_state.json").read_text())
    _restore_rng(state.pop("rng"), torch.load(ckpt_dir / "rng.pt", weights_only=True))
    return state


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((Path(run_dir) / "checkpoints").glob(f"{CKPT_PREFIX}[0-9]*[0-9]"))
    return ckpts[-1] if ckpts else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    ckpts = sorted((Path(run_dir) / "checkpoints").glob(f"{CKPT_PREFIX}[0-9]*[0-9]"))
    for old in ckpts[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
