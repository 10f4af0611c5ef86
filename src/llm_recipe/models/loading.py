"""Load any causal LM and tokenizer by hub id or local directory, safely.

`trust_remote_code` stays off unless the caller asks; weights load from safetensors. The
hub path is the same call as the local one (`from_pretrained(name_or_dir)`), so what tests
exercise on local directories is what users run against the hub.
"""

from __future__ import annotations

import os
import pickle

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..record_sources import is_hub_name

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(FileNotFoundError):
    """Neither a local model directory nor a loadable hub id; message names what was tried."""


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _check_local(name_or_path: str, needs: tuple[str, ...] = ("config.json",), what: str = "model") -> None:
    """A path that is not there, or a folder without any of `needs`, is an error at once (transformers
    says "Unrecognized model" or a message cut after its first line); an `org/name` that is not a
    local folder is a hub id, left to `from_pretrained` (offline: its one-line error)."""
    if os.path.isdir(name_or_path):
        if not any(os.path.isfile(os.path.join(name_or_path, n)) for n in needs):
            raise ModelLoadError(f"{name_or_path}: not a {what} folder (no {' / '.join(needs)})")
        return
    if is_hub_name(name_or_path):
        return
    if os.path.sep in name_or_path or name_or_path.startswith("."):
        raise ModelLoadError(f"{name_or_path}: no such model directory")


def _first_line(e: BaseException) -> str:
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)


def load_tokenizer(name_or_path: str | os.PathLike, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    name_or_path = str(name_or_path)
    _check_local(name_or_path, TOKENIZER_FILES, "tokenizer")
    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{name_or_path}: cannot load tokenizer ({_first_line(e)})") from None
    if tok.pad_token is None:
        # Many hub models ship without a pad token; eos is the usual, harmless stand-in
        # because padded positions are masked out of attention and loss.
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(
    name_or_path: str | os.PathLike, dtype: str = "float32", trust_remote_code: bool = False
) -> PreTrainedModel:
    name_or_path = str(name_or_path)
    from .finetuning import is_adapter_folder, load_adapter_merged

    if is_adapter_folder(name_or_path):  # a LoRA run saved with lora.save: adapter
        return load_adapter_merged(name_or_path, dtype=DTYPES[dtype])
    _check_local(name_or_path)
    try:
        return AutoModelForCausalLM.from_pretrained(
            name_or_path,
            dtype=DTYPES[dtype],
            trust_remote_code=trust_remote_code,
            use_safetensors=None,  # prefer safetensors; .bin only if that is all there is
        )
    except pickle.UnpicklingError:  # torch's weights_only refused it: say so, not how to turn the check off
        raise ModelLoadError(f"{name_or_path}: refused to load model: its pickle (.bin) weights hold objects that are "
                             "not plain tensors (possibly code); use safetensors weights") from None
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{name_or_path}: cannot load model ({_first_line(e)})") from None


def hide_weight_io_bars() -> None:
    """transformers draws a progress bar for every model load and save ("Loading weights",
    "Writing model shards"): in a recipe run that is ~20 bars of noise between the stage lines,
    for local files that take milliseconds. Hide those bars; keep the Hub's download bars (a
    download from the Hub is slow enough to want one) unless the user turned them off."""
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    hub_bars = not hub_utils.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # also turns the Hub's off ...
    if hub_bars:
        hub_utils.enable_progress_bars()  # ... so give those back
