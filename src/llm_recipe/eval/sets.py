"""The evaluation sets: small, hand-written, Japanese and English, versioned in the package.

    safety       harmful requests (a safe model refuses) and benign look-alikes of each (a helpful
                 model answers): `resources/eval/safety-v1.jsonl`
    sycophancy   a question asked neutrally and again after the user asserts a wrong answer, with
                 the right and the wrong answer strings: `resources/eval/sycophancy-v1.jsonl`

A user's own file (JSONL, Parquet, CSV, ...) in the same shape replaces a bundled set (`eval.safety_set`, `eval.sycophancy_set`).
Every problem is an error naming the file and line: an evaluation on a silently shortened set
would report a number about a different set. The version and sha256 of the file go into the report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..files import BadLine
from ..provenance import file_sha256
from ..record_sources import iter_source

EVAL_SETS = Path(__file__).resolve().parent.parent / "resources" / "eval"
BUNDLED = {"safety": EVAL_SETS / "safety-v1.jsonl", "sycophancy": EVAL_SETS / "sycophancy-v1.jsonl"}


@dataclass(frozen=True)
class SafetyItem:
    id: str
    lang: str
    kind: str  # "harmful" | "benign"
    prompt: str


@dataclass(frozen=True)
class SycophancyItem:
    id: str
    lang: str
    question: str  # asked neutrally
    belief_prompt: str  # the same question after the user asserts the wrong answer
    correct: tuple[str, ...]  # any of these in the answer states the right fact
    wrong: tuple[str, ...]  # any of these states the user's wrong belief


@dataclass(frozen=True)
class EvalSet:
    name: str
    path: str
    sha256: str
    items: list

    def describe(self) -> dict:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "items": len(self.items)}


def _strings(rec: dict, key: str, where: str) -> tuple[str, ...]:
    v = rec.get(key)
    vals = [v] if isinstance(v, str) else v
    if not isinstance(vals, list) or not vals or not all(isinstance(s, str) and s.strip() for s in vals):
        raise ValueError(f"{where}: '{key}' must be a non-empty string or list of strings")
    return tuple(vals)


def _text(rec: dict, key: str, where: str) -> str:
    v = rec.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{where}: missing or empty '{key}'")
    return v


def _records(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"{path}: eval set not found")
    for where, rec in iter_source(path):
        if isinstance(rec, BadLine):
            raise ValueError(str(rec))
        yield where, rec


def load_safety_set(path: str | os.PathLike | None = None) -> EvalSet:
    p = Path(path) if path else BUNDLED["safety"]
    items = []
    for where, rec in _records(p):
        kind = rec.get("kind")
        if kind not in ("harmful", "benign"):
            raise ValueError(f"{where}: 'kind' must be 'harmful' or 'benign' (got {kind!r})")
        items.append(SafetyItem(str(rec.get("id", where)), str(rec.get("lang", "")), kind, _text(rec, "prompt", where)))
    if not any(i.kind == "harmful" for i in items) or not any(i.kind == "benign" for i in items):
        raise ValueError(f"{p}: a safety set needs both harmful and benign prompts")
    return EvalSet(p.stem, str(p), file_sha256(p), items)


def load_sycophancy_set(path: str | os.PathLike | None = None) -> EvalSet:
    p = Path(path) if path else BUNDLED["sycophancy"]
    items = [SycophancyItem(str(rec.get("id", where)), str(rec.get("lang", "")), _text(rec, "question", where),
                            _text(rec, "belief_prompt", where), _strings(rec, "correct", where),
                            _strings(rec, "wrong", where))
             for where, rec in _records(p)]
    if not items:
        raise ValueError(f"{p}: empty sycophancy set")
    return EvalSet(p.stem, str(p), file_sha256(p), items)
