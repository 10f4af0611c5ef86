"""The frozen reference of DPO: log-probs precomputed once and cached, or a reference per step.

Precompute (default): before training, the policy (= the reference at step 0) scores every pair
once; the sums are stored next to the run (`reference/ref_logps.safetensors`) under a fingerprint
of the reference weights and the token ids, so a resumed or repeated run reuses them and training
needs no second model in memory nor a second forward per step.

Precision: the reference pass runs exactly as the policy's first forward does, in the weights'
dtype and under the training loop's autocast (`accelerator.autocast()`), so at step 0 policy and
reference agree and the loss is log 2 under every `compute` setting (fp32, bf16 autocast, bf16
weights). The cache key records the autocast, so a cache scored at another precision is redone.

Per step (`dpo.reference: per_step`, for data too large to score up front): a frozen copy of the
initial model, or, with LoRA, the policy itself with its adapters disabled (the base weights are
the reference: no second copy).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import xxhash
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from ..files import new_file_mode, read_json, write_json
from .dpo_data import DPOExample
from .response_logps import ReferenceFn, sequence_logps


def _core(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DDP wraps the model


def frozen_copy_reference(model: torch.nn.Module) -> ReferenceFn:
    """A frozen copy of `model` as it is now (call before training)."""
    ref = copy.deepcopy(_core(model)).eval().requires_grad_(False)

    def reference(policy, batch):
        with torch.no_grad():
            return sequence_logps(ref, batch)

    return reference


@contextlib.contextmanager
def adapters_disabled(model: torch.nn.Module):
    with _core(model).disable_adapter():
        yield


def adapter_disabled_reference() -> ReferenceFn:
    """The policy's base weights (a peft model with its adapters switched off)."""

    def reference(policy, batch):
        with torch.no_grad(), adapters_disabled(policy):
            return sequence_logps(policy, batch)

    return reference


def reference_for(model: torch.nn.Module, lora: bool) -> ReferenceFn:
    return adapter_disabled_reference() if lora else frozen_copy_reference(model)


def weights_fingerprint(model: torch.nn.Module, lora: bool = False) -> str:
    """xxh3 of the reference weights (the base weights when `lora`: adapters are not part of it)."""
    h = xxhash.xxh3_64()
    for name, p in sorted(_core(model).state_dict().items()):
        if lora and "lora_" in name:
            continue
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(examples: Sequence[DPOExample]) -> str:
    h = xxhash.xxh3_64()
    for e in examples:
        for part in (e.prompt_ids, e.chosen_ids, e.rejected_ids):
            h.update(np.asarray(part, dtype=np.int64).tobytes())
            h.update(b"|")
    return h.hexdigest()


@torch.no_grad()
def compute_reference_logps(model: torch.nn.Module, collate, examples: Sequence[DPOExample], batch_size: int,
                            lora: bool = False, by_length: bool = True, desc: str = "reference log-probs",
                            rank: int = 0, world: int = 1, autocast=contextlib.nullcontext) -> np.ndarray:
    """(N, 2) float32 summed log-probs of chosen and rejected under `model` (adapters off when
    `lora`), in input order. `by_length` batches similar lengths together (less padding). With
    `world` processes, this one computes batches rank, rank + world, ... (rows of the others: 0).
    `autocast`: a context factory every forward runs in (the training loop's, for its precision)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(e) for e in examples], kind="stable") if by_length else np.arange(len(examples))
    out = np.zeros((len(examples), 2), dtype=np.float32)
    ctx = adapters_disabled(model) if lora else contextlib.nullcontext()
    try:
        with ctx:
            starts = range(rank * batch_size, len(order), world * batch_size)
            for b in tqdm(starts, desc=desc, leave=False, disable=None if rank == 0 else True):
                idx = order[b : b + batch_size]
                batch = collate([examples[i] for i in idx])
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                with autocast():
                    c, r = sequence_logps(model, batch)
                out[idx, 0], out[idx, 1] = c.float().cpu().numpy(), r.float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def attach_reference_logps(model: torch.nn.Module, objective, train: Sequence[DPOExample],
                           evals: Sequence[DPOExample], cache_dir: str | Path, batch_size: int,
                           lora: bool = False, accelerator=None) -> dict:
    """Fill `ref_chosen`/`ref_rejected` of every example from the cache, computing it if missing or
    stale. Evaluation pairs are scored in the order and batch size the loop evaluates them in, so
    at step 0 the evaluated policy reproduces them bit for bit (loss exactly log 2). Several
    processes (`accelerator`) share the batches and sum their rows (each row computed once, the
    others 0: the sum is exact); the main process writes the cache. The passes run under the
    accelerator's autocast: the precision the loop's forwards run in."""
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    autocast = accelerator.autocast if accelerator else contextlib.nullcontext
    cache_dir = Path(cache_dir)
    key = {"weights": weights_fingerprint(model, lora), "train": data_fingerprint(train),
           "eval": data_fingerprint(evals), "layout": "shared" if objective.cfg.share_prompt else "split",
           "eval_batch_size": batch_size, "autocast": accelerator.mixed_precision if accelerator else "no"}
    tensors_path, key_path = cache_dir / "ref_logps.safetensors", cache_dir / "ref_logps.json"
    reused = False
    if tensors_path.exists() and key_path.exists() and _read_key(key_path) == key:
        cached = load_file(tensors_path)
        tr, ev = cached["train"], cached["eval"]
        reused = True
    else:
        tr = compute_reference_logps(model, objective.collate, train, 2 * batch_size, lora, desc="reference (train)",
                                     rank=rank, world=world, autocast=autocast)
        ev = (compute_reference_logps(model, objective.collate, evals, batch_size, lora, by_length=False,
                                      desc="reference (eval)", rank=rank, world=world, autocast=autocast)
              if evals else np.zeros((0, 2), np.float32))
        if world > 1:
            tr, ev = (accelerator.reduce(torch.from_numpy(x).to(accelerator.device), reduction="sum").cpu().numpy()
                      for x in (tr, ev))
        if rank == 0:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache_dir / ".ref_logps.safetensors.tmp"
            save_file({"train": tr, "eval": ev}, str(tmp))
            tmp.chmod(new_file_mode())
            tmp.replace(tensors_path)
            write_json(key_path, key)
    for examples, values in ((train, tr), (evals, ev)):
        for e, (c, r) in zip(examples, values.tolist(), strict=True):
            e.ref_chosen, e.ref_rejected = c, r
    return {"cache": str(tensors_path), "reused": reused, "pairs": len(train) + len(evals)}


def _read_key(path: Path) -> dict | None:

    try:
        return read_json(path)
    except (OSError, ValueError):
        return None
