"""What identifies the output of a run, in one place, for every stage (curation and training alike).

    run_key(section, seed=, inputs=, base=, ...)   the settings (flattened, minus the fields that
                                                   only say where and how often a run reports),
                                                   the seed, the sha256 of every input file and the
                                                   starting model by content
    differences(old, new)                          the dotted fields that differ
    mismatch(folder, what, old, new, fix)          the one error a rerun with other settings gets,
                                                   naming what changed: `(lr 0.003 -> 0.01, web.jsonl changed)`

Inputs are keyed by content (`provenance.input_hash`), never by path or modification time: a copied
or touched file is the same input, an edited one is another.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from .config import ConfigError
from .provenance import input_hash, model_hashes


class ResumeMismatch(ConfigError):
    """A folder holds the output (or a checkpoint) of a run with other settings or inputs."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}, "c": 2} -> {"a.b": 1, "c": 2} (empty dicts are leaves)."""
    out: dict[str, Any] = {}
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = tree
    return out


def model_key(path: str | os.PathLike) -> dict:
    """A model by content: a local folder by the hashes of its weights and tokenizer (it may move),
    a hub id by name."""
    hashes = model_hashes(path)
    return {k: v for k, v in hashes.items() if k != "path"} if Path(path).is_dir() else hashes


def run_key(section, *, seed: int, inputs: Iterable[str | os.PathLike] = (), base: str | os.PathLike | None = None,
            ignore: Collection[str] = (), **extra: Any) -> dict:
    """What a run computes: its section (a pydantic model or a dict; flattened, minus `ignore`),
    the seed, the inputs by content, the starting model by content, and `extra` as given."""
    dump = section.model_dump(mode="json") if hasattr(section, "model_dump") else section
    conf = {k: v for k, v in flatten(dump).items() if k not in ignore}
    return {"config": conf, "seed": seed, "inputs": {str(p): input_hash(p) for p in inputs},
            "base": model_key(base) if base is not None else None, **extra}


def _by_content(key: dict) -> dict:
    """The key as compared: input files by content only (a moved or copied input, a run folder moved
    with its corpus, is the same input)."""
    if isinstance(key.get("inputs"), dict):
        return {**key, "inputs": sorted(key["inputs"].values())}
    return key


def differences(old: dict, new: dict) -> list[str]:
    """The dotted fields whose values differ (`config.lr`, `inputs.data.jsonl`, `base.weights`);
    inputs are compared by content and named by the files whose content is new."""
    a, b = flatten(_by_content(old)), flatten(_by_content(new))
    diff = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k) and k != "changed_on_resume"]
    if "inputs" in diff:
        known = set((old.get("inputs") or {}).values())
        named = [f"inputs.{Path(p).name}" for p, h in (new.get("inputs") or {}).items() if h not in known]
        diff = [d for d in diff if d != "inputs"] + (named or ["inputs"])
    return diff


def describe(fields: list[str], old: dict, new: dict, shown: int = 6) -> str:
    """`lr 0.003 -> 0.01, web.jsonl changed (+2 more)`: values for settings, 'changed' for hashes."""
    a, b = flatten(old), flatten(new)
    parts = []
    for f in fields[:shown]:
        name = f.removeprefix("config.")
        if f.startswith(("inputs.", "base.", "models.")):  # hashes say nothing to a reader: what changed is enough
            parts.append(f"{name.removeprefix('inputs.')} changed")
        else:
            parts.append(f"{name} {a.get(f)!r} -> {b.get(f)!r}")
    return ", ".join(parts) + (f" (+{len(fields) - shown} more)" if len(fields) > shown else "")


def mismatch(folder: str | os.PathLike, what: str, old: dict, new: dict, fix: str) -> ResumeMismatch:
    """The one error for a folder that holds `what` of a run with other settings or inputs."""
    diff = differences(old, new)
    return ResumeMismatch(f"{folder}: holds {what} of a run with other settings ({describe(diff, old, new)}); {fix}")
