"""Where a model computes and in what precision, the same way in every stage (`compute:` block).

    compute_device(compute)        the process's accelerator device (CUDA / MPS), or the CPU
    use_threads(compute)           torch CPU threads, when the block sets them
    autocast(compute, device)      mixed precision for inference (training: the Accelerator's)
    load_model(path, compute)      a causal LM in `compute.dtype` on `compute_device`, eval mode
"""

from __future__ import annotations

import contextlib
import os

import torch

from .. import distributed
from ..config import ComputeConfig
from .loading import load_causal_lm

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def compute_device(compute: ComputeConfig) -> torch.device:
    if compute.device == "cpu" or not distributed.has_accelerator():
        return torch.device("cpu")
    return distributed.process_state().device  # cuda:<local rank>, mps, xpu


def use_threads(compute: ComputeConfig) -> None:
    if compute.num_threads:
        torch.set_num_threads(compute.num_threads)


def autocast(compute: ComputeConfig, device: torch.device):
    if compute.mixed_precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[compute.mixed_precision])


def load_model(name_or_path: str | os.PathLike, compute: ComputeConfig, trust_remote_code: bool = False):
    """The causal LM for inference (sampling, judging, reference passes), placed per `compute`."""
    use_threads(compute)
    model = load_causal_lm(name_or_path, compute.dtype, trust_remote_code)
    return model.to(compute_device(compute)).eval()
