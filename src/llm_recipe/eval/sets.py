"""The evaluation sets: hand-written, Japanese and English, versioned in the package.

    safety       harmful requests (a safe model refuses) and benign look-alikes (a helpful model
                 answers), each with its category: `resources/eval/safety-v2.jsonl` (the default: 112
                 harmful requests in 7 categories, weapons drugs cyber self-harm privacy hate fraud; 110
                 look-alikes in 5 XSTest-like types, homonym safe_context history fiction figurative, with
                 the harm domain each resembles) and `safety-v1.jsonl` (16 + 16)
    sycophancy   a question asked neutrally, again after the user asserts a wrong answer, and an "are
                 you sure?" pushback after the model's own neutral answer, with the right and the wrong
                 answer strings: `sycophancy-v2.jsonl` (the default: facts, math and
                 opinions-stated-as-facts) and `sycophancy-v1.jsonl` (12 capitals, no pushback)
    helpful      ordinary requests (no risk, no trap) for the helpfulness comparison of a run whose
                 training data has no held-out split of its own: `helpful-v1.jsonl`

`resolve_set(spec, kind)`: a file path, or the name of a bundled set (`safety-v1`, `sycophancy-v2`,
`helpful-v1`, ...). A user's own file (JSONL, Parquet, CSV, ...) in the same shape replaces a
bundled set (`eval.safety_set`, `eval.sycophancy_set`, `eval.prompts`).
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
# the default of each kind of set (`eval.safety_set: None` etc.); older versions stay loadable by name
BUNDLED = {"safety": EVAL_SETS / "safety-v2.jsonl", "sycophancy": EVAL_SETS / "sycophancy-v2.jsonl",
           "helpful": EVAL_SETS / "helpful-v1.jsonl"}


def bundled_sets() -> dict[str, Path]:
    """Every bundled set by name (`safety-v1`, `safety-v2`, ...)."""
    return {p.stem: p for p in sorted(EVAL_SETS.glob("*.jsonl"))}


def named_or_path(spec: str | os.PathLike) -> Path:
    """An existing file as it is, else the bundled set of that name, else the path (the caller's error)."""
    p = Path(spec)
    return p if p.exists() else bundled_sets().get(str(spec), p)


def resolve_set(spec: str | os.PathLike | None, kind: str) -> Path:
    """A set's file: the bundled default of `kind` for None, an existing path, or a bundled set's name."""
    if spec is None:
        return BUNDLED[kind]
    p = named_or_path(spec)
    if not p.exists():
        raise FileNotFoundError(f"{spec}: eval set not found (neither a file nor a bundled set: "
                                f"{', '.join(bundled_sets())})")
    return p


@dataclass(frozen=True)
class SafetyItem:
    id: str
    lang: str
    kind: str  # "harmful" | "benign"
    prompt: str
    category: str = ""  # harmful: the harm domain; benign: the look-alike type
    domain: str = ""  # benign: the harm domain it resembles


@dataclass(frozen=True)
class SycophancyItem:
    id: str
    lang: str
    question: str  # asked neutrally
    belief_prompt: str  # the same question after the user asserts the wrong answer
    correct: tuple[str, ...]  # any of these in the answer states the right fact
    wrong: tuple[str, ...]  # any of these states the user's wrong belief
    category: str = ""  # fact | math | opinion
    pushback: str | None = None  # the user's reply to the model's own neutral answer ("are you sure?")


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
    p = resolve_set(path, "safety")
    items = []
    for where, rec in _records(p):
        kind = rec.get("kind")
        if kind not in ("harmful", "benign"):
            raise ValueError(f"{where}: 'kind' must be 'harmful' or 'benign' (got {kind!r})")
        items.append(SafetyItem(str(rec.get("id", where)), str(rec.get("lang", "")), kind, _text(rec, "prompt", where),
                                str(rec.get("category") or ""), str(rec.get("domain") or "")))
    if not any(i.kind == "harmful" for i in items) or not any(i.kind == "benign" for i in items):
        raise ValueError(f"{p}: a safety set needs both harmful and benign prompts")
    return EvalSet(p.stem, str(p), file_sha256(p), items)


def load_sycophancy_set(path: str | os.PathLike | None = None) -> EvalSet:
    p = resolve_set(path, "sycophancy")
    items = [SycophancyItem(str(rec.get("id", where)), str(rec.get("lang", "")), _text(rec, "question", where),
                            _text(rec, "belief_prompt", where), _strings(rec, "correct", where),
                            _strings(rec, "wrong", where), str(rec.get("category") or ""),
                            _text(rec, "pushback", where) if "pushback" in rec else None)
             for where, rec in _records(p)]
    if not items:
        raise ValueError(f"{p}: empty sycophancy set")
    return EvalSet(p.stem, str(p), file_sha256(p), items)
