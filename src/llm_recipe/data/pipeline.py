"""Curation pipeline core: documents, steps, and the per-step accounting every executor shares.

Document
    A plain dict `{"id": str, "text": str, "source": str, "url": str | None, "meta": dict}`.
    A *batch* is a `list` of documents. Plain dicts (not classes) so batches cross process
    boundaries and Ray Data (`map_batches(batch_format="pandas"/"pyarrow")` -> `to_pylist()`)
    without conversion code.

Step (the contract every curation step follows; dedup steps included)
    ```
    class MyStep(Step):                        # abstract hooks: a subclass missing one cannot be built
        name = "my_step"                       # default key in stats.json
        def process(self, batch, tally):       # list[dict] -> list[dict]
            kept = []
            for doc in batch:
                if bad(doc):
                    tally.drop(doc, "reason_code")   # every doc not returned MUST be dropped here
                else:
                    doc["text"] = fix(doc["text"]); tally.modified("fix")
                    kept.append(doc)
            return kept
    ```
    * `process` gets the docs that are in the step's scope (`sources=` / `skip_sources=`; docs
      outside it pass through untouched and are counted as `skipped`), may modify them in
      place, returns the kept ones, and calls `tally.drop(doc, reason)` for each one it
      removes. `run_steps` checks `in == out + sum(drops)` after every step and raises if a
      step loses a document silently.
    * Steps are picklable (hold config and plain data; load heavy models lazily on first use
      and drop them in `__getstate__`) and deterministic for a given batch, so the local
      process-pool executor and a Ray Data executor run the very same objects.
    * Convenience bases: `Filter` (implement `reason(doc) -> str | None`) and `Mapper`
      (implement `apply(doc, tally) -> None`, modifying in place).

GlobalStep (steps that must see the whole corpus first, e.g. dedup)
    Three phases, so a distributed executor can run them as map / reduce / map:
    1. `observe(batch) -> partial`  runs next to the data (workers) over every batch that
       reaches the step; returns a small picklable summary (hashes, signatures + ids).
    2. `fit(partials)`              runs once in the driver with the partials in a
       deterministic order (shard order, then batch order); builds the global state
       (e.g. the set of ids to drop) and sets `self.fitted = True`.
    3. `process(batch, tally)`      like any step, using the fitted state.
    Executors split a pipeline at each GlobalStep: everything before it runs over all shards
    (to an intermediate shard set), then observe + fit, then the rest continues from there.
    A GlobalStep must be fitted before `process` (it raises otherwise). Executors call
    `observe_scoped(batch)` (observe over the step's source scope). The fitted step is
    pickled to the workers, so keep the fitted state compact (ids to drop, not signatures).
    Where to plug one in: `curate(cfg, out, extra_steps=[...])` places extra steps after the
    heuristic filters and before PII redaction; `build_steps` has the same hook.

Stats
    `run_steps` returns `PipelineStats`: per step `docs_in`, `docs_out`, `skipped`,
    `dropped{reason: n}`, `modified{kind: n}`, and the `seconds` spent in the step (as
    datatrove's `track_time`; for a GlobalStep also its observe and fit). Stats of batches /
    shards merge by addition (`PipelineStats.merge`) and round-trip through JSON (`to_dict` /
    `from_dict`, `with_seconds=True` between processes), which is how the executors assemble
    `stats.json` (counts under `steps`, times under `seconds_by_step`: counts are a function of
    the data, times are not).
"""

from __future__ import annotations

import abc
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import ValidationError

from ..config.curate import StepConfig

Doc = dict[str, Any]


class PipelineError(RuntimeError):
    """A step broke the accounting contract (a programming error, not a data error)."""


@dataclass
class StepStats:
    docs_in: int = 0
    docs_out: int = 0
    skipped: int = 0  # out of the step's source scope: passed through untouched
    dropped: Counter = field(default_factory=Counter)
    modified: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # time spent in the step (summed over batches, shards, workers)

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def add(self, other: StepStats) -> None:
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.skipped += other.skipped
        self.dropped.update(other.dropped)
        self.modified.update(other.modified)
        self.seconds += other.seconds

    def balanced(self) -> bool:
        return self.docs_in == self.docs_out + self.n_dropped

    def to_dict(self, with_seconds: bool = False) -> dict:
        d = {
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "skipped": self.skipped,
            "dropped": dict(sorted(self.dropped.items())),
            "modified": dict(sorted(self.modified.items())),
        }
        if with_seconds:
            d["seconds"] = self.seconds
        return d

    @classmethod
    def from_dict(cls, d: dict) -> StepStats:
        return cls(d["docs_in"], d["docs_out"], d.get("skipped", 0), Counter(d.get("dropped", {})),
                   Counter(d.get("modified", {})), d.get("seconds", 0.0))


class PipelineStats:
    """Ordered per-step stats; merging adds counts step by step."""

    def __init__(self) -> None:
        self.steps: dict[str, StepStats] = {}

    def __getitem__(self, name: str) -> StepStats:
        return self.steps.setdefault(name, StepStats())

    def merge(self, other: PipelineStats) -> PipelineStats:
        for name, s in other.steps.items():
            self[name].add(s)
        return self

    def check(self) -> None:
        for name, s in self.steps.items():
            if not s.balanced():
                raise PipelineError(
                    f"step '{name}': {s.docs_in} in != {s.docs_out} out + {s.n_dropped} dropped"
                )

    def to_dict(self, with_seconds: bool = False) -> dict:
        return {name: s.to_dict(with_seconds) for name, s in self.steps.items()}

    def seconds(self) -> dict[str, float]:
        return {name: round(s.seconds, 4) for name, s in self.steps.items()}

    @classmethod
    def from_dict(cls, d: dict) -> PipelineStats:
        out = cls()
        for name, s in d.items():
            out.steps[name] = StepStats.from_dict(s)
        return out


class Tally:
    """What a step reports through: drops (with reasons) and modifications (by kind)."""

    def __init__(self, step: str, stats: StepStats, dropped: list[Doc] | None) -> None:
        self.step = step
        self.stats = stats
        self._dropped = dropped  # None: the caller does not keep dropped docs

    def drop(self, doc: Doc, reason: str, detail: Any = None) -> None:
        self.stats.dropped[reason] += 1
        if self._dropped is not None:
            audit = {"step": self.step, "reason": reason}
            if detail is not None:
                audit["detail"] = detail
            self._dropped.append({**doc, "drop": audit})

    def modified(self, kind: str, n: int = 1) -> None:
        if n:
            self.stats.modified[kind] += n


class Step(abc.ABC):
    """Base of every curation step. Subclasses implement `process` (see module docstring).

    A step with a block in the `curate:` config names it in `config_class`; its settings and their
    defaults live there and only there. It is built from that block, from keyword fields, or both
    (`MinLength(cfg.min_length)`, `MinLength(min_chars=20)`), validated by the block, and reads
    them from `self.config`. Steps without a block take only `name`, `sources`, `skip_sources`.
    """

    name: str = "step"
    config_class: ClassVar[type[StepConfig] | None] = None

    def __init__(self, config: StepConfig | None = None, /, *, name: str | None = None, **fields: Any) -> None:
        if name:
            self.name = name
        if self.config_class is not None:
            base = config.model_dump() if config is not None else {}
            try:
                self.config = self.config_class.model_validate({**base, **fields})
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(x) for x in err["loc"])
                raise ValueError(f"{type(self).__name__}: {where + ': ' if where else ''}"
                                 f"{err['msg'].removeprefix('Value error, ')}") from None
            sources, skip_sources = self.config.sources, self.config.skip_sources
        else:
            if config is not None:
                raise TypeError(f"{type(self).__name__} has no config block")
            sources, skip_sources = fields.pop("sources", None), fields.pop("skip_sources", None)
            if fields:
                raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(fields)}")
        self.sources = frozenset(sources) if sources else None
        self.skip_sources = frozenset(skip_sources or ())

    def in_scope(self, doc: Doc) -> bool:
        src = doc.get("source")
        return (self.sources is None or src in self.sources) and src not in self.skip_sources

    @abc.abstractmethod
    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        """The in-scope docs -> the kept ones; every other one reported with `tally.drop`."""

    def __call__(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        """Apply the step to the in-scope docs; out-of-scope docs keep their position."""
        if self.sources is None and not self.skip_sources:
            return self.process(batch, tally)
        scoped = [d for d in batch if self.in_scope(d)]
        tally.stats.skipped += len(batch) - len(scoped)
        if not scoped:
            return batch
        kept = self.process(scoped, tally)
        kept_ids = {id(d) for d in kept}
        if len(kept_ids & {id(d) for d in scoped}) == len(kept):  # same objects: keep order
            return [d for d in batch if id(d) in kept_ids or not self.in_scope(d)]
        return [d for d in batch if not self.in_scope(d)] + kept  # step returned new dicts

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Filter(Step):
    """Keep a doc unless `reason(doc)` returns a drop reason code."""

    @abc.abstractmethod
    def reason(self, doc: Doc) -> str | None:
        """The drop reason code, or None to keep the doc."""

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        kept = []
        for doc in batch:
            why = self.reason(doc)
            if why is None:
                kept.append(doc)
            else:
                tally.drop(doc, why)
        return kept


class Mapper(Step):
    """Modify each doc in place via `apply(doc, tally)`; never drops."""

    @abc.abstractmethod
    def apply(self, doc: Doc, tally: Tally) -> None:
        """Modify `doc` in place, counting what changed with `tally.modified`."""

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        for doc in batch:
            self.apply(doc, tally)
        return batch


class GlobalStep(Step):
    """A step that needs the whole corpus first: observe (map) -> fit (reduce) -> process."""

    fitted: bool = False

    @abc.abstractmethod
    def observe(self, batch: list[Doc]) -> Any:
        """Map: a small picklable summary of the batch (hashes, signatures + ids)."""

    @abc.abstractmethod
    def fit(self, partials: Iterable[Any]) -> None:
        """Reduce, once, in corpus order: build the global state and set `self.fitted = True`."""

    def observe_scoped(self, batch: list[Doc]) -> Any:
        """What executors call: `observe` over the docs in this step's source scope."""
        return self.observe([d for d in batch if self.in_scope(d)])

    def __call__(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        if not self.fitted:
            raise PipelineError(f"global step '{self.name}' used before fit()")
        return super().__call__(batch, tally)


def check_unique_names(steps: Sequence[Step]) -> None:
    seen = set()
    for s in steps:
        if s.name in seen:
            raise PipelineError(f"two steps are named '{s.name}'; pass name=... to tell them apart")
        seen.add(s.name)


@dataclass
class BatchResult:
    kept: list[Doc]
    stats: PipelineStats
    dropped: list[Doc] | None  # drop records `{**doc, "drop": {step, reason}}` when kept


def run_steps(steps: Sequence[Step], batch: list[Doc], keep_dropped: bool = False) -> BatchResult:
    """Run `steps` in order over one batch; verifies every step's accounting."""
    stats = PipelineStats()
    dropped: list[Doc] | None = [] if keep_dropped else None
    for step in steps:
        s = stats[step.name]
        s.docs_in += len(batch)
        t0 = time.perf_counter()
        batch = step(batch, Tally(step.name, s, dropped))
        s.seconds += time.perf_counter() - t0
        s.docs_out += len(batch)
        if not s.balanced():
            raise PipelineError(
                f"step '{step.name}' lost documents silently: {s.docs_in} in, {s.docs_out} out, "
                f"{s.n_dropped} reported dropped"
            )
    return BatchResult(batch, stats, dropped)


def split_at_global(steps: Sequence[Step]) -> list[list[Step]]:
    """Segments of the pipeline; every segment after the first starts with a GlobalStep."""
    segments: list[list[Step]] = [[]]
    for s in steps:
        if isinstance(s, GlobalStep) and segments[-1]:
            segments.append([])
        segments[-1].append(s)
    return segments
