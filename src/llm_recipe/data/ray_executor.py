"""Ray Data executor: the local executor's shard loop, with the per-shard work run as Ray Data tasks.

    from llm_recipe.data.ray_executor import run_ray
    stats = run_ray(shards, steps, "runs/x/curated", num_cpus=8)   # or address="auto"

`run_local` does the bookkeeping (segments split at GlobalSteps, observe -> fit in the driver in
shard order -> process, per-shard resume markers, the fingerprint check, stats.json); this module
only supplies its `mapper`: one Ray Data row per shard task, results streamed back in shard order,
so a marker is written as soon as a shard is finished and a killed job resumes where it stopped.
Kept ids, outputs and stats are therefore the local executor's, file for file.

The unit of parallel work is one input shard (read, run and written in batches by one task), so
use at least as many shards as CPUs. `out_dir` (outputs, intermediate shards, markers) and a fuzzy
dedup `workdir` must be on a filesystem every node can read: a shared one on a multi-node cluster.
Needs the `ray` extra (`pip install 'llm-recipe[ray]'`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..files import write_json
from .executor import run_local
from .pipeline import GlobalStep, Step
from .readers import ShardReader


def _call(row: dict, fn: Callable) -> dict:
    from ray import cloudpickle  # Ray's own serializer: steps defined in a driver script travel too

    return {"out": cloudpickle.dumps(fn(*cloudpickle.loads(row["args"])))}


def _ray_map(fn: Callable, items: list, workers: int, desc: str, progress: bool) -> Iterator:
    """`executor.Mapper` on Ray Data: one block (so one task) per item, results in item order."""
    import ray
    from ray import cloudpickle

    if not items:
        return
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    rows = [{"args": cloudpickle.dumps(it)} for it in items]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map(_call, fn_kwargs={"fn": fn})
    for r in ds.iter_rows():
        yield cloudpickle.loads(r["out"])


def run_ray(
    shards: Sequence[str | os.PathLike],
    steps: Sequence[Step],
    out_dir: str | os.PathLike,
    *,
    reader: ShardReader | None = None,
    fmt: str = "jsonl",
    max_docs_per_file: int = 100_000,
    batch_size: int = 1000,
    keep_dropped: bool = False,
    resume: bool = True,
    fingerprint: dict[str, Any] | None = None,
    num_cpus: int | None = None,
    address: str | None = None,
    progress: bool = True,
    writer_meta: dict | None = None,
) -> dict:
    """Run `steps` over `shards` on Ray (a local Ray is started when none is running); the
    arguments are `run_local`'s (its `workers` are Ray's CPUs here)."""
    try:
        import ray
    except ImportError:
        raise ImportError("the Ray executor needs Ray Data: pip install 'llm-recipe[ray]'") from None
    started = False
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        started = True
    try:
        ray.data.DataContext.get_current().enable_progress_bars = progress
        stats = run_local(shards, steps, out_dir, reader=reader, fmt=fmt, max_docs_per_file=max_docs_per_file,
                          batch_size=batch_size, workers=1, keep_dropped=keep_dropped, resume=resume,
                          fingerprint=fingerprint, progress=False, mapper=_ray_map,
                          writer_meta=writer_meta)
    finally:
        if started:
            ray.shutdown()
    stats["executor"] = "ray"
    stats["global_steps"] = {s.name: s.report for s in steps if isinstance(s, GlobalStep) and hasattr(s, "report")}
    write_json(Path(out_dir) / "stats.json", stats)
    return stats
