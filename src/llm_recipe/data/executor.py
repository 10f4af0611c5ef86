"""Local executor: run a step pipeline over input shards with a process pool, resumably.

Layout of `out_dir` after a run:
    data/<shard>-00000.jsonl    kept documents, one output prefix per input shard
    dropped/<shard>.jsonl       (keep_dropped) every dropped doc + `drop: {step, reason}`, its
                                text PII-redacted like the kept docs' (see `pii`), and
                                every bad input record as `{"drop": {step: read, reason}, "where": file:line}`
    stats.json                  per-step counts (in = out + sum(drops) for each), totals,
                                bad-input audit (file:line + reason), output files
    .state/                     resume markers: one JSON per finished shard (its stats + outputs);
                                intermediate shards between global steps (deleted once all finish)

Resume: a shard whose marker exists is not recomputed; the marker is written only after the
shard's outputs are renamed into place, so a crash mid-shard just redoes that shard. The run
fingerprint (config fields + inputs) is stored; resuming with a different one is an error that
names the fields that changed, rather than a silently mixed output.

The per-shard work goes through a `mapper` (default: this process pool); the Ray executor passes
a Ray Data one, so both executors share this loop, its layout and its resume.

Global steps (see `pipeline`): the pipeline is split at each `GlobalStep`; segment k reads the
outputs of segment k-1 (kept under `.state/seg-k`), the step's `observe` runs over them in the
pool, `fit` runs here in shard order (streamed: it consumes each shard's partials as they arrive),
then the segment runs. On resume, `fit` is recomputed
(deterministic) unless the segment already finished.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..files import BadLine, read_json, write_json, write_jsonl
from ..run_keys import ResumeMismatch, differences, mismatch  # noqa: F401 - ResumeMismatch: its home before run_keys
from .pii import Redactor, dropped_redactors, redact_dropped
from .pipeline import (
    Doc,
    GlobalStep,
    PipelineStats,
    Step,
    StepStats,
    check_unique_names,
    run_steps,
    split_at_global,
)
from .readers import ShardReader
from .token_shards import TokenShardWriter
from .writers import ShardWriter

MAX_AUDIT = 1000  # bad-input records listed by file:line in stats.json (all are counted)


@dataclass
class ShardTask:
    index: int
    path: str
    key: str  # output prefix, unique per shard: 00003-web
    steps: Sequence[Step]
    reader: ShardReader
    out_dir: str
    fmt: str
    max_docs: int
    batch_size: int
    dropped_dir: str | None
    dropped_name: str = ""
    redactors: Sequence[Redactor] = ()  # applied to dropped docs before they are written
    writer_meta: dict | None = None  # fmt "tokens": the token shard header's fields (`token_shards.shard_meta`)


@dataclass
class ShardResult:
    key: str
    stats: dict
    bad: list[dict] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    bytes_in: int = 0


def account_read(rec: Doc | BadLine, read: StepStats, bad: list[dict]) -> bool:
    """Count one record read into the `read` pseudo-step; a bad one is listed in `bad` by file:line
    and reason. True when the record is a document to process."""
    read.docs_in += 1
    if isinstance(rec, BadLine):
        read.dropped[rec.reason] += 1
        bad.append({"where": f"{rec.path}:{rec.line}", "reason": rec.reason, "detail": rec.detail})
        return False
    read.docs_out += 1
    return True


def _batches(task: ShardTask, stats: PipelineStats, bad: list[dict]) -> Iterator[list[Doc]]:
    """Read the shard in batches, accounting for bad records in the `read` pseudo-step."""
    read = stats["read"]
    batch: list[Doc] = []
    if not task.path:  # an intermediate shard whose documents were all dropped
        return
    for rec in task.reader.read(task.path):
        if not account_read(rec, read, bad):
            continue
        batch.append(rec)
        if len(batch) >= task.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def process_shard(task: ShardTask) -> ShardResult:
    """Worker: read one shard, run the steps batch by batch, write kept (and dropped) docs."""
    stats = PipelineStats()
    stats["read"]  # first key, so stats.json lists steps in pipeline order
    for s in task.steps:
        stats[s.name]
    bad: list[dict] = []
    dropped: list[Doc] = []
    with _writer(task) as writer:
        for batch in _batches(task, stats, bad):
            res = run_steps(task.steps, batch, keep_dropped=task.dropped_dir is not None)
            stats.merge(res.stats)
            writer.write(res.kept)
            if res.dropped:
                dropped.extend(res.dropped)
        outputs = [str(p) for p in writer.close()]
    if task.dropped_dir is not None:
        audit = [{"drop": {"step": "read", "reason": b["reason"]}, "where": b["where"]} for b in bad]
        write_jsonl(Path(task.dropped_dir) / f"{task.dropped_name or task.key}.jsonl",
                    audit + redact_dropped(dropped, task.redactors))
    stats.check()
    size = os.path.getsize(task.path) if task.path else 0
    return ShardResult(task.key, stats.to_dict(with_seconds=True), bad, outputs, size)


def _writer(task: ShardTask) -> ShardWriter | TokenShardWriter:
    """Documents as files (`writers`), or, for `fmt="tokens"`, as token shards (`token_shards`)."""
    if task.fmt == "tokens":
        return TokenShardWriter(task.out_dir, task.key, task.writer_meta or {})
    return ShardWriter(task.out_dir, task.key, task.fmt, task.max_docs)


def observe_shard(step: GlobalStep, path: str, reader: ShardReader, batch_size: int) -> tuple[list[Any], float]:
    """Worker: the map phase of a global step over one (intermediate) shard; (partials, seconds)."""
    task = ShardTask(0, path, "", (), reader, "", "jsonl", 1, batch_size, None)
    partials, seconds = [], 0.0
    for b in _batches(task, PipelineStats(), []):
        t0 = time.perf_counter()
        partials.append(step.observe_scoped(b))
        seconds += time.perf_counter() - t0
    return partials, seconds


def _shard_key(i: int, path: Path) -> str:
    stem = path.name.split(".")[0]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:40]
    return f"{i:05d}-{safe}"


# (fn, argument tuples, workers, progress label, progress on) -> fn's results, in item order
Mapper = Callable[[Callable, list, int, str, bool], Iterator]


def _map(fn: Callable, items: list, workers: int, desc: str, progress: bool) -> Iterator:
    """Ordered map over a process pool (or inline for one worker), with a progress bar."""
    bar = tqdm(total=len(items), desc=desc, unit="shard", disable=not progress or not items)
    try:
        if workers <= 1 or len(items) <= 1:
            for it in items:
                yield fn(*it)
                bar.update()
            return
        # spawn: never fork a parent that may hold torch / tokenizer threads
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for r in pool.map(fn, *zip(*items, strict=True)):
                yield r
                bar.update()
    finally:
        bar.close()


def _stream(observed: Iterator[tuple[list[Any], float]], clock: dict[str, float]) -> Iterator[Any]:
    """Each shard's partials as they arrive, so `fit` never needs the whole corpus's in memory;
    `clock` sums the observe seconds and the time spent waiting for them."""
    while True:
        t0 = time.perf_counter()
        shard = next(observed, None)
        clock["wait"] += time.perf_counter() - t0
        if shard is None:
            return
        clock["observe"] += shard[1]
        yield from shard[0]


def _check_fingerprint(state: Path, fingerprint: dict[str, Any], resume: bool) -> None:
    """`ResumeMismatch` naming what changed when `state` holds a run with another fingerprint
    (`run_keys.run_key`: settings, seed, inputs by content); without `resume`, start over."""
    marker = state / "run.json"
    if state.exists() and not resume:
        shutil.rmtree(state)
    if marker.exists():
        old = read_json(marker).get("fingerprint") or {}
        if differences(old, fingerprint):
            raise mismatch(state.parent, "curated shards", old, fingerprint,
                           "use another output dir or --set curate.executor.resume=false to start over")
    write_json(marker, {"fingerprint": fingerprint})


def run_local(
    shards: Sequence[Path],
    steps: Sequence[Step],
    out_dir: str | os.PathLike,
    *,
    reader: ShardReader | None = None,
    fmt: str = "jsonl",
    max_docs_per_file: int = 100_000,
    batch_size: int = 1000,
    workers: int = 2,
    keep_dropped: bool = False,
    resume: bool = True,
    fingerprint: dict[str, Any] | None = None,
    progress: bool = True,
    mapper: Mapper = _map,
    writer_meta: dict | None = None,
) -> dict:
    """Run `steps` over `shards` into `out_dir`; returns (and writes) the stats.json dict.
    `fingerprint`: what identifies the run for resume (`run_keys.run_key`). `fmt="tokens"` writes token
    shards (the documents carry `tokens`: `data.tokenize`) with `writer_meta` in their headers."""
    check_unique_names(steps)
    out = Path(out_dir)
    state = out / ".state"
    _check_fingerprint(state, fingerprint or {}, resume)
    reader = reader or ShardReader()
    if not resume:
        for sub in ("data", "dropped"):
            shutil.rmtree(out / sub, ignore_errors=True)
    segments = split_at_global(steps)
    redactors = dropped_redactors(steps) if keep_dropped else []
    inputs = [str(p) for p in shards]
    keys = [_shard_key(i, Path(p)) for i, p in enumerate(inputs)]
    seg_reader = reader
    total = PipelineStats()
    bad: list[dict] = []
    bytes_in = 0
    outputs: list[str] = []
    for k, seg in enumerate(segments):
        last = k == len(segments) - 1
        seg_out = out / "data" if last else state / f"seg-{k}" / "data"
        done_dir = state / f"seg-{k}" / "done"
        done = {p.stem: read_json(p) for p in done_dir.glob("*.json")}
        todo = [i for i, key in enumerate(keys) if key not in done]
        head = seg[0] if seg else None
        if isinstance(head, GlobalStep):
            _fit_global(head, state / f"seg-{k}", bool(todo), [(head, p, seg_reader, batch_size) for p in inputs],
                        mapper, workers, progress, total)
        tasks = [
            ShardTask(i, inputs[i], keys[i], seg, seg_reader, str(seg_out),
                      fmt if last else "jsonl", max_docs_per_file if last else 10**9, batch_size,
                      str(out / "dropped") if keep_dropped else None,
                      keys[i] if k == 0 else f"{keys[i]}-seg{k}", redactors, writer_meta if last else None)
            for i in todo
        ]
        for res in mapper(process_shard, [(t,) for t in tasks], workers, f"curate {k + 1}/{len(segments)}",
                        progress):
            done[res.key] = res.__dict__
            write_json(done_dir / f"{res.key}.json", res.__dict__)  # marker written last
        for key in keys:
            r = done[key]
            seg_stats = PipelineStats.from_dict(r["stats"])
            if k > 0:  # the intermediate re-read is not a user-visible step
                seg_stats.steps.pop("read", None)
            else:
                bad.extend(r["bad"])
                bytes_in += r["bytes_in"]
            total.merge(seg_stats)
            if last:
                outputs.extend(r["outputs"])
        # the next segment reads this one's outputs; shard keys stay the input shards' keys
        if not last:
            inputs, seg_reader = _regroup(keys, done), ShardReader()
    total.check()
    for k in range(len(segments) - 1):  # every shard finished: intermediate copies are not needed
        shutil.rmtree(state / f"seg-{k}" / "data", ignore_errors=True)
    stats = _summary(total, bad, outputs, bytes_in, len(keys))
    write_json(out / "stats.json", stats)
    return stats


def _fit_global(head: GlobalStep, seg_state: Path, needed: bool, items: list[tuple], mapper: Mapper, workers: int,
                progress: bool, total: PipelineStats) -> None:
    """A segment that starts with a GlobalStep: fit it on every input shard when some shard still needs
    the segment; its observe + fit seconds, kept with the run (so a rerun that needs no fit reports
    the same times), added to `total`."""
    marker = seg_state / "fit_seconds.json"
    if needed:
        clock = {"observe": 0.0, "wait": 0.0}
        t0 = time.perf_counter()
        head.fit(_stream(mapper(observe_shard, items, workers, f"observe {head.name}", progress), clock))
        fit_seconds = time.perf_counter() - t0 - clock["wait"]
        write_json(marker, {"step": head.name, "seconds": clock["observe"] + fit_seconds})
    if marker.exists():
        total[head.name].seconds += read_json(marker)["seconds"]


def _regroup(keys: list[str], done: dict) -> list[str]:
    """One input per shard key for the next segment: the single intermediate file (or none)."""
    paths = []
    for key in keys:
        outs = done[key]["outputs"]
        if len(outs) > 1:  # intermediate writers never roll over; guard the assumption
            raise RuntimeError(f"intermediate shard {key} split into {len(outs)} files")
        paths.append(outs[0] if outs else "")
    return paths


def _summary(total: PipelineStats, bad: list[dict], outputs: list[str], bytes_in: int,
             n_shards: int) -> dict:
    steps = total.to_dict()
    read = steps.get("read", {"docs_in": 0})
    final_out = list(steps.values())[-1]["docs_out"] if steps else 0
    dropped_by_step = {name: sum(s["dropped"].values()) for name, s in steps.items()}
    return {
        "shards": n_shards,
        "bytes_in": bytes_in,
        "records_in": read["docs_in"],
        "docs_out": final_out,
        "dropped_total": sum(dropped_by_step.values()),
        "dropped_by_step": dropped_by_step,
        "steps": steps,
        "seconds_by_step": total.seconds(),
        "bad_input": bad[:MAX_AUDIT],
        "bad_input_not_listed": max(0, len(bad) - MAX_AUDIT),
        "outputs": outputs,
    }
