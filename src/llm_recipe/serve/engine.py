"""The dynamic batcher of `llm-recipe serve`: one generation thread, requests batched as they come.

A request becomes a `Job` of rows (its n choices, or its prompts for /v1/completions). The
generation thread takes the first waiting job, waits up to `batch_wait_ms` for more, and generates
every row it collected (up to `max_batch_size`) as one batch (`infer.decoder.decode`); requests
that arrive while a batch runs form the next one. After every token the jobs of the batch are
woken (`notify`, thread-safe) so their handlers stream what is new. A row whose client went away
is cancelled and idles; a job cancelled before its batch starts is dropped unrun.

`Stats` counts what the server did (requests, batches by size, tokens, cancelled rows, errors);
`/metrics` shows it in Prometheus' text format.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..infer.decoder import DecodeRow, decode


@dataclass
class Job:
    rows: list[DecodeRow]
    notify: Callable[[], None]
    prompt_tokens: int
    done: bool = False
    error: str | None = None

    def cancel(self) -> None:
        for r in self.rows:
            r.cancel()


@dataclass
class Stats:
    requests: Counter = field(default_factory=Counter)  # by endpoint
    batches: Counter = field(default_factory=Counter)  # batch size (rows) -> number of batches
    prompt_tokens: int = 0
    generation_tokens: int = 0
    cancelled_rows: int = 0
    errors: int = 0

    def prometheus(self, queue_depth: int) -> str:
        lines = ["# TYPE llm_recipe_requests_total counter"]
        lines += [f'llm_recipe_requests_total{{endpoint="{k}"}} {v}' for k, v in sorted(self.requests.items())]
        lines += ["# TYPE llm_recipe_batches_total counter", f"llm_recipe_batches_total {sum(self.batches.values())}",
                  "# TYPE llm_recipe_batch_rows_total counter",
                  f"llm_recipe_batch_rows_total {sum(k * v for k, v in self.batches.items())}",
                  "# TYPE llm_recipe_batch_size_total counter"]
        lines += [f'llm_recipe_batch_size_total{{size="{k}"}} {v}' for k, v in sorted(self.batches.items())]
        for name, v in (("prompt_tokens_total", self.prompt_tokens), ("generation_tokens_total", self.generation_tokens),
                        ("cancelled_rows_total", self.cancelled_rows), ("errors_total", self.errors)):
            lines += [f"# TYPE llm_recipe_{name} counter", f"llm_recipe_{name} {v}"]
        lines += ["# TYPE llm_recipe_queue_depth gauge", f"llm_recipe_queue_depth {queue_depth}"]
        return "\n".join(lines) + "\n"


class Engine:
    def __init__(self, model, pad_id: int, max_batch_size: int, batch_wait_ms: float, autocast_ctx: Callable):
        self.model, self.pad_id = model, pad_id
        self.max_batch_size, self.wait = max_batch_size, batch_wait_ms / 1000
        self.autocast = autocast_ctx
        self.stats = Stats()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="llm-recipe-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def close(self) -> None:
        self._queue.put(None)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def _collect(self, first: Job) -> tuple[list[Job], Job | None, bool]:
        """(the batch, a job that did not fit and starts the next one, whether to stop)."""
        batch, size = [first], len(first.rows)
        deadline = time.monotonic() + self.wait
        while size < self.max_batch_size:
            try:
                job = self._queue.get(timeout=max(deadline - time.monotonic(), 0)) \
                    if deadline > time.monotonic() else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, None, True
            if size + len(job.rows) > self.max_batch_size:
                return batch, job, False
            batch.append(job)
            size += len(job.rows)
        return batch, None, False

    def _loop(self) -> None:
        carry, stop = None, False
        while not stop:
            first = carry if carry is not None else self._queue.get()
            if first is None:
                return
            batch, carry, stop = self._collect(first)
            self._run(batch)

    def _run(self, batch: list[Job]) -> None:
        live = [j for j in batch if any(r.finish is None for r in j.rows)]
        for j in batch:
            if j not in live:  # every row cancelled while queued: nothing to generate
                self.stats.cancelled_rows += len(j.rows)
                j.done = True
                j.notify()
        rows = [r for j in live for r in j.rows]
        if not rows:
            return
        self.stats.batches[len(rows)] += 1
        self.stats.prompt_tokens += sum(j.prompt_tokens for j in live)

        def wake() -> None:
            for j in live:
                j.notify()

        try:
            with self.autocast():
                decode(self.model, rows, self.pad_id, wake)
        except Exception as e:  # noqa: BLE001 - reported to the request, the server keeps serving
            self.stats.errors += 1
            for j in live:
                j.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}"
        finally:
            self.stats.generation_tokens += sum(len(r.ids) for r in rows)
            self.stats.cancelled_rows += sum(r.finish == "cancelled" for r in rows)
            for j in live:
                j.done = True
                j.notify()
