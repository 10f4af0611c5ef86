"""Ray Data executor: the same step objects as the local executor, run as Ray Data maps.

    from llm_recipe.data.ray_executor import run_ray
    stats = run_ray(shards, steps, "runs/x/curated", num_cpus=8)   # or address="auto"

Unit of work: one row = one chunk of up to `batch_size` documents of one input shard,
`{shard, chunk, docs, stats, dropped}` (documents JSON-encoded, so heterogeneous `meta`
dicts never have to fit an Arrow schema). Flow, per pipeline segment (split at GlobalSteps,
as in the local executor):

    read (one task per shard, project's ShardReader: same bad-record accounting)
      -> [GlobalStep: observe per chunk on workers; partials sorted by (shard, chunk); fit here]
      -> run the segment's steps per chunk (run_steps: same accounting checks)
      -> materialize (the next segment's observe and process both read it)
    write: each worker writes its chunk to data/<shard key>-c<chunk>-00000.<fmt> atomically

Sorting partials by (shard, chunk) gives `fit` the documents in corpus order, exactly as the
local executor does, so dedup keeps the same first-of-cluster documents. stats.json has the
local executor's layout. Needs the `ray` extra (`pip install 'llm-recipe[ray]'`).
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import write_json, write_jsonl
from .executor import _shard_key, _summary, account_read
from .pii import Redactor, dropped_redactors, redact_dropped
from .pipeline import (
    GlobalStep,
    PipelineStats,
    Step,
    check_unique_names,
    run_steps,
    split_at_global,
)
from .readers import ShardReader
from .writers import ShardWriter


def _read_shard(row: dict, reader: ShardReader, batch_size: int, names: list[str]) -> list[dict]:
    """One input shard -> chunk rows; bad records are counted in the `read` step of their chunk."""
    chunks: list[dict] = []
    docs: list[dict] = []
    stats, bad = PipelineStats(), []

    def emit() -> None:
        nonlocal docs, stats, bad
        for n in names:  # every step listed, in pipeline order, even with no docs
            stats[n]
        chunks.append({"shard": row["shard"], "chunk": len(chunks), "docs": json.dumps(docs, ensure_ascii=False),
                       "stats": json.dumps(stats.to_dict(with_seconds=True)), "dropped": "[]", "bad": json.dumps(bad)})
        docs, stats, bad = [], PipelineStats(), []

    for rec in reader.read(row["path"]):
        # stats is replaced after each emitted chunk
        if not account_read(rec, stats["read"], bad):
            continue
        docs.append(rec)
        if len(docs) >= batch_size:
            emit()
    if docs or bad or not chunks:
        emit()
    return chunks


def _observe(row: dict, step: GlobalStep) -> dict:
    t0 = time.perf_counter()
    partial = step.observe_scoped(json.loads(row["docs"]))
    # pickle here is process-to-process transport of our own objects, never user files
    return {"shard": row["shard"], "chunk": row["chunk"], "partial": pickle.dumps(partial, protocol=5),
            "seconds": time.perf_counter() - t0}


def _run_segment(row: dict, steps: Sequence[Step], keep_dropped: bool) -> dict:
    res = run_steps(steps, json.loads(row["docs"]), keep_dropped=keep_dropped)
    stats = PipelineStats.from_dict(json.loads(row["stats"])).merge(res.stats)
    dropped = json.loads(row["dropped"]) + (res.dropped or [])
    return {**row, "docs": json.dumps(res.kept, ensure_ascii=False), "stats": json.dumps(stats.to_dict(with_seconds=True)),
            "dropped": json.dumps(dropped, ensure_ascii=False)}


def _write(row: dict, keys: list[str], out_dir: str, fmt: str, keep_dropped: bool,
           redactors: Sequence[Redactor]) -> dict:
    key = f"{keys[row['shard']]}-c{row['chunk']:05d}"
    docs = json.loads(row["docs"])
    outputs: list[str] = []
    if docs:
        with ShardWriter(Path(out_dir) / "data", key, fmt, max_docs=10**9) as w:
            w.write(docs)
            outputs = [str(p) for p in w.close()]
    if keep_dropped:
        bad = json.loads(row["bad"])
        audit = [{"drop": {"step": "read", "reason": b["reason"]}, "where": b["where"]} for b in bad]
        dropped = audit + redact_dropped(json.loads(row["dropped"]), redactors)
        if dropped:
            write_jsonl(Path(out_dir) / "dropped" / f"{key}.jsonl", dropped)
    return {"shard": row["shard"], "chunk": row["chunk"], "stats": row["stats"], "bad": row["bad"],
            "outputs": json.dumps(outputs)}


def run_ray(
    shards: Sequence[str | os.PathLike],
    steps: Sequence[Step],
    out_dir: str | os.PathLike,
    *,
    reader: ShardReader | None = None,
    fmt: str = "jsonl",
    batch_size: int = 1000,
    keep_dropped: bool = False,
    num_cpus: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> dict:
    """Run `steps` over `shards` on Ray (a local Ray is started when none is running)."""
    try:
        import ray
    except ImportError:
        raise ImportError("the Ray executor needs Ray Data: pip install 'llm-recipe[ray]'") from None
    check_unique_names(steps)
    reader = reader or ShardReader()
    inputs = [str(p) for p in shards]
    keys = [_shard_key(i, Path(p)) for i, p in enumerate(inputs)]
    names = ["read", *(s.name for s in steps)]
    out = Path(out_dir)
    started = False
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ds = ray.data.from_items([{"shard": i, "path": p} for i, p in enumerate(inputs)])
        ds = ds.flat_map(_read_shard, fn_kwargs={"reader": reader, "batch_size": batch_size, "names": names})
        ds = ds.materialize()
        global_seconds: dict[str, float] = {}  # observe + fit of each global step
        for seg in split_at_global(steps):
            head = seg[0] if seg else None
            if isinstance(head, GlobalStep):
                rows = ds.map(_observe, fn_kwargs={"step": head}).take_all()
                rows.sort(key=lambda r: (r["shard"], r["chunk"]))
                t0 = time.perf_counter()
                head.fit(pickle.loads(r["partial"]) for r in rows)
                global_seconds[head.name] = sum(r["seconds"] for r in rows) + time.perf_counter() - t0
            ds = ds.map(_run_segment, fn_kwargs={"steps": seg, "keep_dropped": keep_dropped}).materialize()
        written = ds.map(_write, fn_kwargs={"keys": keys, "out_dir": str(out), "fmt": fmt,
                                            "keep_dropped": keep_dropped,
                                            "redactors": dropped_redactors(steps)}).take_all()
    finally:
        if started:
            ray.shutdown()
    written.sort(key=lambda r: (r["shard"], r["chunk"]))
    total, bad, outputs = PipelineStats(), [], []
    for r in written:
        total.merge(PipelineStats.from_dict(json.loads(r["stats"])))
        bad.extend(json.loads(r["bad"]))
        outputs.extend(json.loads(r["outputs"]))
    for name, seconds in global_seconds.items():
        total[name].seconds += seconds
    total.check()
    stats: dict[str, Any] = _summary(total, bad, outputs, sum(os.path.getsize(p) for p in inputs), len(keys))
    stats["executor"] = "ray"
    stats["global_steps"] = {s.name: s.report for s in steps if isinstance(s, GlobalStep) and hasattr(s, "report")}
    write_json(out / "stats.json", stats)
    return stats
