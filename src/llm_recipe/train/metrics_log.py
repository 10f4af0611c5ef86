"""Append-only JSONL metrics log (one object per logging event) that survives resume."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path


class MetricsLog:
    """`sinks` get every record written too (experiment trackers, plain log lines)."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True, sinks: Sequence[Callable[[dict], None]] = ()):
        self.path = Path(path)
        self.enabled = enabled
        self.sinks = list(sinks) if enabled else []
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        """On resume, drop events logged after the checkpoint so the log has no duplicates (step -1:
        a run that starts over keeps nothing). A line torn by a kill mid-write is dropped too."""
        if not (self.enabled and self.path.exists()):
            return
        keep = [ln for ln, rec in self._records() if rec.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(ln + "\n" for ln in keep))
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            for sink in self.sinks:
                sink(record)

    def _records(self) -> list[tuple[str, dict]]:
        out = []
        for ln in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(ln) if ln.strip() else None
            except json.JSONDecodeError:  # the last line of a run killed while writing it
                rec = None
            if isinstance(rec, dict):
                out.append((ln, rec))
        return out

    def read(self) -> list[dict]:
        return [rec for _, rec in self._records()] if self.path.exists() else []
