"""The canonical preference pair, its validation, and the skip log every reader fills.

A pair is `{"prompt", "chosen", "rejected"}` plus an optional `margin` (how much better chosen
is; used by the reward model's margin loss) and free-form `meta`. `prompt` is either a string
(one user turn) or a list of chat messages ending in a user turn (multi-turn context); chosen
and rejected are the assistant's next reply as plain text.

Nothing is dropped silently: every unusable line or pair is counted in a `SkipLog` by reason,
with `file:line` of the first occurrences of each reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..files import BadLine, write_jsonl
from ..record_sources import check_skips, check_source, iter_source
from ..splits import split_by_key

ROLES = ("system", "user", "assistant")


@dataclass
class PreferencePair:
    prompt: str | list[dict]
    chosen: str
    rejected: str
    margin: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def messages(self) -> list[dict]:
        """The context as chat messages (a string prompt is one user turn)."""
        return [{"role": "user", "content": self.prompt}] if isinstance(self.prompt, str) else list(self.prompt)

    def to_json(self) -> dict:
        rec: dict[str, Any] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        if self.margin is not None:
            rec["margin"] = self.margin
        if self.meta:
            rec["meta"] = self.meta
        return rec


@dataclass
class SkipLog:
    """Counts by reason, and where the first few of each reason happened (`file:line`)."""

    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    where: dict[str, list[str]] = field(default_factory=dict)  # reason -> first locations
    max_locations: int = 20

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        locs = self.where.setdefault(reason, [])
        if len(locs) < self.max_locations:
            locs.append(f"{where}: {detail}" if detail else where)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: SkipLog) -> None:
        self.kept += other.kept
        for reason, n in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n
            locs = self.where.setdefault(reason, [])
            locs.extend(other.where.get(reason, [])[: self.max_locations - len(locs)])

    def to_json(self) -> dict:
        return {"kept": self.kept, "skipped": dict(sorted(self.skipped.items())), "where": self.where}

    def check(self, what: str, max_share: float, field: str) -> None:
        """The skips said, and too many bad records an error (`record_sources.check_skips`)."""
        first = [f"{locs[0]} ({reason})" for reason, locs in self.where.items() if locs]
        check_skips(what, self.kept, self.skipped, first, max_share, field)

    def summary(self) -> str:
        parts = ", ".join(f"{r}={n}" for r, n in sorted(self.skipped.items()))
        return f"kept {self.kept}, skipped {self.total_skipped}" + (f" ({parts})" if parts else "")


class InvalidRecord(ValueError):
    """A record that cannot become a pair; `reason` is the short code counted in the SkipLog."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def check_prompt(prompt: Any) -> str | list[dict]:
    """A non-empty string, or a non-empty message list whose last turn is the user's."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidRecord("empty_prompt")
        return prompt
    if isinstance(prompt, list) and prompt:
        msgs = []
        for m in prompt:
            if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                raise InvalidRecord("bad_message", "messages need string 'role' and 'content'")
            if m["role"] not in ROLES:
                raise InvalidRecord("bad_message", f"unknown role {m['role']!r}")
            msgs.append({"role": m["role"], "content": m["content"]})
        if msgs[-1]["role"] != "user":
            raise InvalidRecord("bad_message", "the prompt must end with a user turn")
        if not any(m["content"].strip() for m in msgs if m["role"] == "user"):
            raise InvalidRecord("empty_prompt")
        return msgs
    if prompt is None or prompt == []:
        raise InvalidRecord("empty_prompt")
    raise InvalidRecord("bad_type", f"prompt is {type(prompt).__name__}")


def check_response(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidRecord("bad_type", f"{name} is {type(value).__name__}, expected a string")
    if not value.strip():
        raise InvalidRecord("empty_response", name)
    return value


def make_pair(prompt: Any, chosen: Any, rejected: Any, margin: Any = None, meta: dict | None = None) -> PreferencePair:
    """Validate and build a pair; raises InvalidRecord with a reason code."""
    p = check_prompt(prompt)
    c = check_response(chosen, "chosen")
    r = check_response(rejected, "rejected")
    if c.strip() == r.strip():
        raise InvalidRecord("chosen_equals_rejected")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
        raise InvalidRecord("bad_type", f"margin is {type(margin).__name__}")
    return PreferencePair(p, c, r, None if margin is None else float(margin), dict(meta or {}))


def write_pairs(path: str | os.PathLike, pairs: Iterable[PreferencePair]) -> int:
    return write_jsonl(path, (p.to_json() for p in pairs))


def prompt_key(prompt: str | list[dict]) -> str:
    """A stable text key of a prompt (for splits by prompt and grouping)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def user_text(prompt: str | list[dict]) -> str:
    """The text the user asked: the prompt itself, or its first user turn."""
    return prompt if isinstance(prompt, str) else next(m["content"] for m in prompt if m["role"] == "user")


def split_by_prompt(pairs: Sequence[PreferencePair], eval_fraction: float, seed: int = 0
                    ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Train/held-out split by prompt (`splits.split_by_key`): all pairs of a prompt land on the
    same side, so held-out accuracy is measured on prompts never trained on."""
    return split_by_key(pairs, lambda p: prompt_key(p.prompt), eval_fraction, seed)


def iter_records(files: Iterable[str | os.PathLike], log: SkipLog, what: str) -> Iterator[tuple[str, dict]]:
    """(`where`, record) for each record of the sources (`record_sources`: JSONL, Parquet, CSV,
    datasets folders, hub names); unreadable records are counted in `log` by reason. A missing
    source is an error that names it as `what` data."""
    for f in files:
        check_source(f, f"{what} data")
        for where, rec in iter_source(f):
            if isinstance(rec, BadLine):
                log.skip(rec.reason, where, rec.detail)
            else:
                yield where, rec
