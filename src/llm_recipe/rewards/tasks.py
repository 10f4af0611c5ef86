"""Verifiable tasks: prompts with the columns their verifiers read (a reference answer, a language).

    load_task(spec)              a bundled task by name ("arith-v1": `resources/tasks/arith-v1/`) or a
                                 folder with train.jsonl, test.jsonl and optionally task.json ({"verifier":
                                 a built-in verifier name}, default math_answer): Task(name, train, test,
                                 sha256, verifier)
    prompt_rows(files)           records of a task's files (JSONL / Parquet / CSV ...): "prompt" (text, or
                                 messages: the last user turn) and every other column; any bad
                                 record is an error naming its line (a task is curated data)
    rl_prompt_split(...)         RL prompts and their columns: a task's, or prompt files' (as
                                 `preference.candidates.read_prompts` reads them, bad lines counted)
    task_files(spec)             the data files of a task (what a run key hashes), [] for None
    columns_of(rows)             {column: [value per row]} (what reward functions get as keyword
                                 arguments), the prompt left out

A task's test split is held out: RL trains on `train` only and the before/after evaluation and the
eval stage use `test`, so a result on it is a result on problems the model never saw.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..files import BadLine
from ..preference.candidates import read_prompts
from ..preference.records import SkipLog
from ..record_sources import check_source, iter_source

TASKS_DIR = Path(__file__).resolve().parent.parent / "resources" / "tasks"


@dataclass(frozen=True)
class Task:
    name: str
    train: list[dict]
    test: list[dict]
    sha256: str  # of train.jsonl + test.jsonl: which version of the data a result is about
    verifier: str = "math_answer"  # the built-in verifier that checks an answer (task.json's "verifier")

    def describe(self) -> dict:
        return {"name": self.name, "train": len(self.train), "test": len(self.test), "sha256": self.sha256,
                "verifier": self.verifier}


def bundled_tasks() -> list[str]:
    return sorted(p.name for p in TASKS_DIR.iterdir() if (p / "test.jsonl").is_file()) if TASKS_DIR.is_dir() else []


def task_folder(spec: str | os.PathLike) -> Path:
    p = Path(spec)
    if (p / "test.jsonl").is_file():
        return p
    if (TASKS_DIR / str(spec) / "test.jsonl").is_file():
        return TASKS_DIR / str(spec)
    raise FileNotFoundError(f"task {spec}: not a bundled task ({', '.join(bundled_tasks()) or 'none'}) "
                            "nor a folder with train.jsonl and test.jsonl")


def task_files(spec: str | os.PathLike | None) -> list[Path]:
    """The files of task `spec` that decide its data (a run keyed on them reruns when they change)."""
    if not spec:
        return []
    folder = task_folder(spec)
    return [folder / f for f in ("train.jsonl", "test.jsonl", "task.json") if (folder / f).is_file()]


def prompt_rows(files: Sequence[str | os.PathLike], what: str = "prompts") -> list[dict]:
    """Every record of `files` with its prompt (text, or a conversation's last user turn: RL prompts
    are single-turn) and its other columns; a record without a prompt is an error naming its line."""
    rows = []
    for f in files:
        check_source(f, what)
        for where, rec in iter_source(f):
            if isinstance(rec, BadLine):
                raise ValueError(str(rec))
            p = rec.get("prompt") if isinstance(rec, dict) else None
            if isinstance(p, list) and p and isinstance(p[-1], dict):
                p = next((m.get("content") for m in reversed(p) if m.get("role") == "user"), None)
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"{where}: a prompt record needs a non-empty 'prompt' (text or messages)")
            rows.append({**rec, "prompt": p})
    return rows


def columns_of(rows: Sequence[dict]) -> dict[str, list]:
    """The rows' columns other than the prompt, one list each (None where a row lacks the column)."""
    keys = sorted({k for r in rows for k in r if k != "prompt"})
    return {k: [r.get(k) for r in rows] for k in keys}


def load_task(spec: str | os.PathLike) -> Task:
    folder = task_folder(spec)
    h = hashlib.sha256()
    for split in ("train.jsonl", "test.jsonl"):
        if (folder / split).is_file():
            h.update((folder / split).read_bytes())
    train = prompt_rows([folder / "train.jsonl"], "task train split") if (folder / "train.jsonl").is_file() else []
    test = prompt_rows([folder / "test.jsonl"], "task test split")
    overlap = {r["prompt"] for r in train} & {r["prompt"] for r in test}
    if overlap:
        raise ValueError(f"task {spec}: {len(overlap)} prompt(s) are in both train and test, e.g. "
                         f"{next(iter(overlap))[:60]!r}")
    meta = json.loads((folder / "task.json").read_text(encoding="utf-8")) if (folder / "task.json").is_file() else {}
    return Task(folder.name, train, test, h.hexdigest(), meta.get("verifier", "math_answer"))


@dataclass
class PromptSplit:
    """RL prompts with their dataset columns: train (rolled out) and held out (evaluated before/after)."""

    train_prompts: list[str]
    eval_prompts: list[str]
    train_columns: dict[str, list]
    eval_columns: dict[str, list]
    source: dict  # what they came from (task name and sha256, or files)


def rl_prompt_split(task: str | None, prompt_files: Sequence | None, n_prompts: int, eval_prompts: int
                    ) -> PromptSplit | None:
    """A task's train split (all of it) and the first `eval_prompts` of its test split; or prompt
    files split as `stages.rl.style_prompts` splits them (the first ones held out), with their
    columns; None when there is neither (the caller's default prompts)."""
    if task:
        t = load_task(task)
        held = t.test[:eval_prompts]
        return PromptSplit([r["prompt"] for r in t.train], [r["prompt"] for r in held], columns_of(t.train),
                           columns_of(held), {"task": t.describe()})
    if not prompt_files:
        return None
    log, where = SkipLog(), f"RL prompts ({', '.join(map(str, prompt_files))})"
    rows = [{**r.get("columns", {}), "prompt": _last_user_turn(r["prompt"])}
            for r in read_prompts(prompt_files, log, columns=True)]
    log.check(where, 1.0, "")  # none usable: one line naming the files and the reasons
    if len(rows) < 2:
        raise ValueError(f"{where}: {len(rows)} usable prompt; at least 2 are needed (held-out evaluation "
                         "and training)")
    n_eval = min(eval_prompts, max(len(rows) // 5, 1))
    train, held = rows[n_eval : n_eval + n_prompts], rows[:n_eval]
    return PromptSplit([r["prompt"] for r in train], [r["prompt"] for r in held], columns_of(train),
                       columns_of(held), {"files": [str(f) for f in prompt_files]})


def _last_user_turn(p) -> str:
    """RL prompts are single-turn: a conversation is reduced to its last user turn."""
    return p if isinstance(p, str) else next(m["content"] for m in reversed(p) if m["role"] == "user")
