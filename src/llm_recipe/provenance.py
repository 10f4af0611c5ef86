"""What a run writes next to its outputs so it can be reproduced: resolved config, library
versions, git commit, and content hashes of every input file."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .files import write_json

_LIBS = ("llm-recipe", "torch", "transformers", "tokenizers", "accelerate", "peft", "datasets", "numpy", "trl")


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = None
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return res.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def file_sha256(path: str | os.PathLike) -> str:
    st = os.stat(path)  # a stage checks its inputs, then records them: each file is read once
    return _sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, _size: int, _mtime_ns: int, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def input_hash(path: str | os.PathLike) -> str:
    """sha256 of a file; of a folder (a datasets folder, a folder of shards): sha256 over its files'
    relative paths and hashes; a hub dataset name is recorded as such (its files are not here)."""
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(f"{f.relative_to(p)}\0{file_sha256(f)}\n".encode())
        return "dir:" + h.hexdigest()
    return "not a local path (hub dataset: not hashed)"


# what makes a model folder the same model: its weights and its tokenizer (config.json follows the weights)
_WEIGHTS = (".safetensors", ".bin", ".pt", ".gguf")
_TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
              "special_tokens_map.json", "chat_template.jinja")


def model_hashes(path: str | os.PathLike) -> dict:
    """The resolved path of a model and the sha256 of its weights and of its tokenizer files; a hub
    id is recorded by name (its files are not here)."""
    p = Path(path)
    if not p.is_dir():
        return {"path": str(path), "weights": "not a local folder (hub model: not hashed)", "tokenizer": None}

    def digest(files: list[Path]) -> str | None:
        h = hashlib.sha256()
        for f in files:
            h.update(f"{f.name}\0{file_sha256(f)}\n".encode())
        return h.hexdigest() if files else None

    files = sorted(f for f in p.iterdir() if f.is_file())
    return {"path": str(p.resolve()), "weights": digest([f for f in files if f.name.endswith(_WEIGHTS)]),
            "tokenizer": digest([f for f in files if f.name in _TOKENIZER])}


def write_run_manifest(
    out_dir: str | os.PathLike, *, stage: str, config: Any, inputs: Iterable[str | os.PathLike] = (),
    extra: dict | None = None, init_from: str | os.PathLike | None = None,
) -> Path:
    """Write `run.json`: stage, resolved config, versions, commit, input hashes, argv, and for a
    fine-tuning stage the model it started from (`init_from`: resolved path, sha256 of weights and
    tokenizer; the config's own `init_from` is often null: the recipe's previous stage)."""
    cfg = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    path = Path(out_dir) / "run.json"
    write_json(path, {
        "stage": stage,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
        "config": cfg,
        "versions": library_versions(),
        "git_commit": git_commit(),
        "inputs": {str(p): input_hash(p) for p in inputs},
        "init_from": model_hashes(init_from) if init_from else None,
        **(extra or {}),
    })
    return path
