"""An on-disk cache of answered judge / critic requests, so a rerun or a resume costs nothing.

One JSONL line per answered request: {"key", "text", "finish_reason", "prompt_tokens",
"completion_tokens", "endpoint", "model"}. The key is the sha256 of the request that produced it
(endpoint URL and model, the messages, which hold the template filled with the prompt and the
answers, and every sampling setting), so a changed template, answer or setting is a miss, never a
stale hit. Nothing secret goes in: no header, no API key.

Appends are atomic: each answer is one `write()` of a whole line on an O_APPEND descriptor,
fsynced. A process killed mid-write can leave a torn last line: it is ignored when the cache is
opened, counted (`torn_lines`), and cut off so the next append starts on a fresh line.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path


def request_key(payload: dict) -> str:
    """sha256 of a request (canonical JSON: sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False,
                                     separators=(",", ":")).encode("utf-8")).hexdigest()


class JudgeCache:
    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict] = {}
        self.torn_lines = 0  # lines that were not a whole record (a write cut short), ignored
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        for line in raw.splitlines(keepends=True):
            try:
                rec = json.loads(line) if line.endswith(b"\n") else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                rec = None
            if isinstance(rec, dict) and isinstance(rec.get("key"), str) and isinstance(rec.get("text"), str):
                self.entries[rec["key"]] = rec
            elif line.strip():
                self.torn_lines += 1
        if raw and not raw.endswith(b"\n"):  # a write cut short: cut it off, appends start on a fresh line
            with open(self.path, "r+b") as f:
                f.truncate(raw.rfind(b"\n") + 1)

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, record: dict) -> None:
        rec = {"key": key, **record}
        self.entries[key] = rec
        if self.path is None:
            return
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def __len__(self) -> int:
        return len(self.entries)
