"""File I/O shared by every stage: atomic writes and line-numbered JSONL reading.

Every output goes through `atomic_write` so a crash never leaves a half-written file that a
later stage would happily read. Every JSONL reader goes through `iter_jsonl` so a bad line is
reported as `file:line: reason` instead of a traceback from deep inside json.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gzip
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson


@functools.cache
def new_file_mode() -> int:
    """The mode a plain `open()` would give a new file (0644 under the usual umask 022). Read once:
    reading the umask means setting it, which other threads would see for a moment."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def share_files(folder: str | os.PathLike) -> None:
    """Give every file under `folder` the mode `open()` would: safetensors writes weights through a
    private temp file (0600), which a teammate or a serving account then cannot read."""
    mode = new_file_mode()
    for p in Path(folder).rglob("*"):
        if p.is_file() and not p.is_symlink():
            p.chmod(mode)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file next to `path`; rename it over `path` only if the block succeeds. The file
    gets the mode `open()` would give it: a temp file is private (0600), the result should not be.
    An OS-level write failure (disk full, read-only, a folder named `path`) is an OutputUnwritable."""
    path = output_file(path)
    kept = f"kept: {path.name} as it was" if path.is_file() else f"kept: nothing ({path.name} was not written)"
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        unwritable = output_unwritable(path, e, kept)
        if unwritable is None:
            raise
        raise unwritable from None


def output_file(path: str | os.PathLike) -> Path:
    """`path` as an output file; a folder of that name is an OutputUnwritable (check it before the work)."""
    path = Path(path)
    if path.is_dir():
        raise output_unwritable(path, IsADirectoryError(errno.EISDIR, "is a folder"), "nothing written")
    return path


def link_folder(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """`dst` as a copy of folder `src` made of hard links (no second copy of the weights on disk;
    a plain copy across file systems), built under a temp name and renamed into place."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, tmp, copy_function=link)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return dst


MARKER = "complete.json"  # written last into a folder `write_complete` makes


# OS-level write failures, and what to do about each: one line naming the folder and what was kept,
# whichever layer failed (a Python open/mkdir, safetensors' Rust writer, torch's zip writer).
WRITE_ERRORS = {
    errno.ENOSPC: ("no space left on device", "free some space and run the same command again"),
    errno.EDQUOT: ("disk quota exceeded", "free some space (or raise the quota) and run the same command again"),
    errno.EFBIG: ("file too large for this process's file size limit", "raise it (ulimit -f) and run again"),
    errno.EROFS: ("read-only file system", "choose a writable output folder (or remount it read-write)"),
    errno.EACCES: ("permission denied", "make the folder writable for this user or choose another one"),
    errno.EPERM: ("operation not permitted", "make the folder writable for this user or choose another one"),
    errno.EISDIR: ("a folder of that name exists", "give a file name, not a folder"),
}


class OutputUnwritable(OSError):
    """Writing an output failed at the OS level (disk full, quota, read-only, permissions): one line
    naming the folder, the reason and what was kept. Every write is atomic, so nothing half-written
    is left to be taken as done."""

    def __init__(self, code: int, message: str):
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _strerror_code(text: str) -> int | None:
    return next((code for code in WRITE_ERRORS if os.strerror(code) in text), None)


def _within(path: Path, where: Path) -> bool:
    """`path` is `where`, inside it, or inside a sibling temp of it (`.name.*.tmp`, `name.tmp/`)."""
    path, where = path.absolute(), where.absolute()
    return any(p == where or p.parent == where.parent and p.name.startswith((where.name, "." + where.name))
               for p in (path, *path.parents))


def write_error_code(e: BaseException) -> int | None:
    """The errno of an OS-level write failure among WRITE_ERRORS, whatever layer raised it; else None.
    safetensors (Rust) says `(os error 28)`; torch's zip writer says `open file failed with strerror:
    ...`, or, when a write comes up short (a full disk, a quota), `unexpected pos N vs M` or `file
    write failed`, with no errno at all."""
    for err in (e, e.__cause__, e.__context__):
        if err is None:
            continue
        if isinstance(err, OSError) and err.errno in WRITE_ERRORS:
            return err.errno
        text = str(err)
        found = re.search(r"\(os error (\d+)\)", text)
        if found and int(found.group(1)) in WRITE_ERRORS:
            return int(found.group(1))
        if "inline_container.cc" in text:  # torch.save's PytorchStreamWriter
            if "strerror:" in text:
                return _strerror_code(text)
            if "unexpected pos" in text or "file write failed" in text:
                return errno.ENOSPC
    return None


def _failed_path(e: BaseException) -> str:
    """The file an error names: an OSError's filename, safetensors' `at path "..."`."""
    if getattr(e, "filename", None):
        return os.fsdecode(e.filename)
    found = re.search(r'at path "([^"]+)"', str(e))
    return found.group(1) if found else "the output folder"


def output_unwritable(where: str | os.PathLike | None, e: BaseException,
                      kept: str = "finished outputs are kept and nothing half-written is left") -> OutputUnwritable | None:
    """`e` as the one-line OutputUnwritable naming `where` and what was `kept`, or None when `e` is
    no OS-level write failure of `where` (an OSError about a file outside it: reading an input). An
    OutputUnwritable of a file inside `where` is said again for `where` (the caller knows what was kept).
    `where` None: the file the error names."""
    where = _failed_path(e) if where is None else where
    code = e.errno if isinstance(e, OutputUnwritable) else write_error_code(e)
    name = getattr(e, "filename", None)
    if code is None or (name and not _within(Path(os.fsdecode(name)), Path(where))):
        return None
    reason, advice = WRITE_ERRORS[code]
    return OutputUnwritable(code, f"{where}: cannot write: {reason}; {kept}; {advice}")


@contextlib.contextmanager
def unwritable_as(where: str | os.PathLike, kept: str | Callable[[], str]) -> Iterator[None]:
    """An OS-level write failure of a file in `where` inside the block (a log line, a plot, a mkdir,
    torch's writer) is the one-line OutputUnwritable naming `where` and what was `kept` (a callable:
    what is kept at the moment of the failure). An OutputUnwritable from an inner writer already
    names its folder and what it kept: it passes as it is; any other error too."""
    try:
        yield
    except OutputUnwritable:
        raise
    except Exception as e:
        unwritable = output_unwritable(where, e, kept() if callable(kept) else kept)
        if unwritable is None:
            raise
        raise unwritable from None


def write_complete(folder: str | os.PathLike, write: Callable[[Path], None], info: dict | None = None,
                   kept: str | None = None) -> Path:
    """Write a folder all or nothing: `write` fills `folder.tmp/`, the marker (with `info`) goes in
    last, then the rename. A kill or a full disk at any point leaves no `folder` (a rerun redoes it).
    An OS-level write failure is an OutputUnwritable saying what was `kept` (default: the folder as it
    was, or nothing)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if kept is None:
        kept = (f"kept: the previous {folder.name}/ as it was" if is_complete(folder)
                else f"kept: nothing ({folder.name}/ was not written)")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write(tmp)
        share_files(tmp)
        write_json(tmp / MARKER, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(info or {})})
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk gets its space back
        unwritable = output_unwritable(folder, e, kept)
        if unwritable is None:
            raise
        raise unwritable from None
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def is_complete(folder: str | os.PathLike, info: dict | None = None) -> bool:
    """Whether `folder` was written completely (and, given `info`, with that info in its marker)."""
    marker = Path(folder) / MARKER
    if not marker.exists():
        return False
    return info is None or info.items() <= read_json(marker).items()


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file the project wrote (or a user gave); a torn or hand-broken one is one line naming
    the file and where it breaks (`ValueError`), never a traceback."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text (expected JSON)") from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=False)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, records: Any) -> int:
    n = 0
    with atomic_write(path) as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


@dataclass(frozen=True)
class BadLine:
    """A JSONL line that could not be used, with where it was and why."""

    path: str
    line: int
    reason: str  # short machine-readable code: invalid_json, not_utf8, not_object, ...
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


def open_text_bytes(path: str | os.PathLike) -> IO[bytes]:
    """Open a possibly compressed file (.gz, .zst) for binary reading."""
    p = str(path)
    if p.endswith(".gz"):
        return gzip.open(p, "rb")
    if p.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(p, "rb"), closefd=True))
    return open(p, "rb")


# A record (one line) larger than this is skipped unread (`too_large`): a 48 MB line took minutes and
# gigabytes downstream. The recipe's `max_record_mb` sets it (`set_max_record_bytes`).
_MAX_RECORD = {"bytes": 8 << 20}


def set_max_record_bytes(n: int) -> None:
    _MAX_RECORD["bytes"] = n


def max_record_bytes() -> int:
    """The record size cap (a JSONL line, a web page) in bytes."""
    return _MAX_RECORD["bytes"]


def _no_big_floats(obj: Any) -> bool:
    """No float of magnitude >= 2**63 anywhere in a parsed record (the floats orjson may have made
    from integer literals that do not fit 64 bits; json keeps those integers)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        t = type(o)
        if t is dict:
            stack.extend(o.values())
        elif t is list:
            stack.extend(o)
        elif t is float and not -9.2e18 < o < 9.2e18:
            return False
    return True


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict | BadLine]]:
    """Yield `(line_number, record)` or `(line_number, BadLine)`; blank lines are skipped.

    Decoding is per line so one non-UTF-8 byte costs one line, not the whole file. A line over the
    record size cap is skipped in chunks, never held whole.
    """
    limit = _MAX_RECORD["bytes"]
    with open_text_bytes(path) as f:
        lineno = 0
        while raw := f.readline(limit + 1):
            lineno += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # the rest of the line, 1 MB at a time
                    raw = f.readline(1 << 20)
                yield lineno, BadLine(str(path), lineno, "too_large", f"over max_record_mb={limit / 2**20:g}")
                continue
            if not raw.strip():
                continue
            try:  # orjson reads the bytes (valid UTF-8, strict JSON) several times faster than json
                rec = orjson.loads(raw)
                if not _no_big_floats(rec):  # maybe an integer beyond 64 bits, which orjson reads as a float
                    raise orjson.JSONDecodeError("integer beyond 64 bits", "", 0)
            except orjson.JSONDecodeError:  # json decides: NaN, big integers, lone surrogates, or the reason
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield lineno, BadLine(str(path), lineno, "not_utf8", str(e))
                    continue
                try:
                    rec = json.loads(text)
                except json.JSONDecodeError as e:
                    yield lineno, BadLine(str(path), lineno, "invalid_json", e.msg)
                    continue
            if not isinstance(rec, dict):
                yield lineno, BadLine(str(path), lineno, "not_object", type(rec).__name__)
                continue
            yield lineno, rec


def read_jsonl_strict(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file whose every line must be a JSON object; the first bad line is an error."""
    out = []
    for _, rec in iter_jsonl(path):
        if isinstance(rec, BadLine):
            raise ValueError(str(rec))
        out.append(rec)
    return out


class FolderInUse(RuntimeError):
    """Another process is writing into the folder (its lock is held)."""


_LOCKS: dict[str, IO] = {}  # folders this process holds: a second trainer of the same process may reuse


def lock_folder(folder: str | os.PathLike) -> IO:
    """An exclusive lock on `folder` (`.lock`, holding the PID) for the rest of this process: two runs
    into one folder would interleave metrics and mix checkpoints. The OS drops the lock when the
    process ends, however it ends (kill -9 included), so a stale lock cannot block a rerun."""
    import fcntl

    folder = Path(folder).resolve()
    if str(folder) in _LOCKS:
        return _LOCKS[str(folder)]
    with unwritable_as(folder, "nothing written (the run did not start)"):
        folder.mkdir(parents=True, exist_ok=True)
        f = open(folder / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 - held open for the process's life
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise FolderInUse(f"{folder}: another run (pid {holder}) is writing here; wait for it to finish or "
                          "choose another --output-dir") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    _LOCKS[str(folder)] = f
    return f


def release_folder(folder: str | os.PathLike) -> None:
    """Let go of `lock_folder(folder)` before this process ends: a driver that ran stages in-process
    and now hands the folder to a child process (which takes the lock itself)."""
    f = _LOCKS.pop(str(Path(folder).resolve()), None)
    if f is not None:
        f.close()  # closing the descriptor drops the flock
