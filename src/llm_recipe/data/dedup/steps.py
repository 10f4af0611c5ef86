"""Dedup as pipeline steps (`pipeline.GlobalStep`: observe -> fit -> process).

observe  (workers)  per batch: ids + a small summary (digests / MinHash sketch / embeddings)
fit      (driver)   all summaries in corpus order -> clusters -> {dropped id: kept id}
process  (workers)  drop the documents in that map, with the kept id in the audit record

With `spill: true` (exact, fuzzy) fit keeps nothing per document in memory: row numbers, an
on-disk id table, hash-partitioned sorts and a drop table that `process` memory-maps
(`spill.py`; docs/dedup.md has the measurements and how this maps onto a cluster).

Kept = the first document of each cluster in corpus order (shard order, then position), so the
local process pool and the Ray executor, which split the work differently, keep the same ids.
After `fit`, `report` holds what the level found (pairs, clusters, largest clusters).

Fuzzy dedup with exact verification has workers write shingle hashes to `workdir/shingles`
(content-addressed files) instead of shipping them to the driver, so `workdir` must be
readable by the driver: any local path for the process pool or a local Ray, a shared
filesystem for a multi-node Ray cluster (or use `verify: signature`, which needs no files).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ...config.curate import DedupConfig, ExactDedupConfig, FuzzyDedupConfig, SemanticDedupConfig
from ..pipeline import Doc, GlobalStep, PipelineError, Tally
from .components import cluster_pairs, component_reps
from .exact import ExactDedup, content_digest
from .fuzzy import FuzzyParams, MinHashDedup, Sketcher
from .semantic import TfidfEmbedder, cluster_embeddings, make_embedder
from .shingles import ShingleSpec
from .spill import DropTable, IdTable, Partitions, SpillArray, id_keys


def _check_unique(ids: list[str], step: str) -> None:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        _not_unique(dup, step)


def _not_unique(doc_id: str, step: str) -> NoReturn:
    raise PipelineError(f"{step}: document id '{doc_id}' occurs more than once; dedup needs unique ids")


def _largest(reps: np.ndarray, sizes: np.ndarray, top: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The `top` largest clusters (kept row, size), ties by kept row: the report's order."""
    order = np.lexsort((reps, -sizes))[:top]
    return reps[order], sizes[order]


class _SpillFit:
    """What a spilling `fit` writes under `directory`: the id table, the ids' 128-bit hashes by row
    and in hash partitions (the uniqueness check), and the drop table `process` reads."""

    def __init__(self, directory: Path):
        shutil.rmtree(directory, ignore_errors=True)  # a rerun's fit starts over
        self.ids = IdTable(directory / "ids")
        self.keys = SpillArray(directory / "id_keys.u64", np.uint64, 2)
        self.id_parts = Partitions(directory / "id_parts", 3)
        self.drops = DropTable(directory / "drops")
        self.rows = 0

    def add_ids(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, id hashes) of a batch of ids, in corpus order."""
        keys = id_keys(ids)
        rows = np.arange(self.rows, self.rows + len(ids), dtype=np.uint64)
        self.ids.append(ids)
        self.keys.append(keys)
        self.id_parts.append(np.column_stack([keys, rows]))
        self.rows += len(ids)
        return rows, keys

    def check_unique(self, step: str) -> None:
        for a in self.id_parts.sorted():
            same = np.flatnonzero((a[1:, 0] == a[:-1, 0]) & (a[1:, 1] == a[:-1, 1]))
            if len(same):
                _not_unique(self.ids.get([int(a[same[0] + 1, 2])])[0], step)
        self.id_parts.remove()

    def drop_rows(self, rows: np.ndarray, kept: np.ndarray, window: int = 1 << 20) -> None:
        """Drop `rows` (ascending) in favour of `kept`: their id hashes are read window by window."""
        self.keys.close()
        for w in range(0, self.rows, window):
            a, b = np.searchsorted(rows, [w, w + window])
            if a == b:
                continue
            block = np.fromfile(self.keys.path, np.uint64, 2 * min(window, self.rows - w), offset=16 * w)
            self.drops.add(block.reshape(-1, 2)[rows[a:b] - w], kept[a:b])

    def finish(self, step: _DedupStep, reps: np.ndarray, sizes: np.ndarray) -> None:
        """Hand the tables to `step`; `reps`/`sizes`: its largest clusters."""
        self.drops.finish()
        self.ids.close()
        step.drops, step.ids = self.drops, self.ids
        step.report["largest_clusters"] = [
            {"kept": i, "size": int(n)} for i, n in zip(self.ids.get(reps.tolist()), sizes.tolist(), strict=True)]
        step.fitted = True


def _workdir(step: GlobalStep, configured: Path | None) -> Path:
    """`configured`, or a temp dir made here (in the driver, before workers get a pickled copy of
    the step) and removed when the driver's step object goes away."""
    if configured is not None:
        return Path(configured)
    tmp = tempfile.mkdtemp(prefix=f"llm-recipe-{step.name}-")
    weakref.finalize(step, shutil.rmtree, tmp, True)
    return Path(tmp)


class _DedupStep(GlobalStep):
    reason = "duplicate"

    def __init__(self, config: Any = None, /, **kw: Any) -> None:
        super().__init__(config, **kw)
        self.drop_map: dict[str, str] = {}
        self.report: dict[str, Any] = {}
        self.drops: DropTable | None = None  # spill: the drop list on disk instead of drop_map
        self.ids: IdTable | None = None

    def _set_clusters(self, ids: list[str], rep: np.ndarray) -> None:
        removed = np.flatnonzero(rep != np.arange(len(rep)))
        self.drop_map = {ids[i]: ids[rep[i]] for i in removed.tolist()}
        counts = np.bincount(rep, minlength=len(rep))
        reps = np.flatnonzero(counts > 1)
        big, sizes = _largest(reps, counts[reps])
        self.report["largest_clusters"] = [{"kept": ids[i], "size": int(n)}
                                           for i, n in zip(big.tolist(), sizes.tolist(), strict=True)]
        self.fitted = True

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        if self.drops is not None and self.ids is not None:
            rows = self.drops.lookup(id_keys([d["id"] for d in batch]))
            kept_ids = iter(self.ids.get(rows[rows >= 0].tolist()))
            kept_of = [None if r < 0 else next(kept_ids) for r in rows.tolist()]
        else:
            kept_of = [self.drop_map.get(doc["id"]) for doc in batch]
        kept = []
        for doc, k in zip(batch, kept_of, strict=True):
            if k is None:
                kept.append(doc)
            else:
                tally.drop(doc, self.reason, {"kept": k})
        return kept


class ExactDedupStep(_DedupStep):
    name = "exact_dedup"
    reason = "exact_duplicate"

    config_class = ExactDedupConfig

    def __init__(self, config: ExactDedupConfig | None = None, /, **kw: Any):
        super().__init__(config, **kw)
        self.hash, self.normalize = self.config.hash, self.config.normalize
        self.workdir = _workdir(self, self.config.workdir) if self.config.spill else None

    def observe(self, batch: list[Doc]) -> tuple[list[str], list[bytes]]:
        return [d["id"] for d in batch], [content_digest(d["text"], self.hash, self.normalize) for d in batch]

    def fit(self, partials: Iterable[tuple[list[str], list[bytes]]]) -> None:
        if self.config.spill:
            self._fit_spilled(partials)
            return
        dd, ids, reps = ExactDedup(), [], []
        for batch_ids, digests in partials:
            ids.extend(batch_ids)
            reps.append(dd.add(digests))
        _check_unique(ids, self.name)
        self.report = {**dd.stats(), "hash": self.hash, "normalize": self.normalize}
        self._set_clusters(ids, np.concatenate(reps) if reps else np.zeros(0, np.int64))

    def _fit_spilled(self, partials: Iterable[tuple[list[str], list[bytes]]]) -> None:
        """Rows (digest, row, id hash) in digest partitions; per partition, sorted, the first row of
        each digest group is kept (the same first-in-corpus-order rule as `ExactDedup`)."""
        assert self.workdir is not None  # set when spill is on
        work = self.workdir / "exact"
        sp = _SpillFit(work / "fit")
        digests = Partitions(work / "digests", 5)
        for batch_ids, dig in partials:
            rows, keys = sp.add_ids(batch_ids)
            # the first 128 bits of the digest (all of xxh128 / MD5; SHA-1's 160 truncated)
            d = np.frombuffer(b"".join(x[:16] for x in dig), dtype=np.uint64).reshape(-1, 2)
            digests.append(np.column_stack([d, rows, keys]))
        sp.check_unique(self.name)
        groups = removed = 0
        top_reps, top_sizes = np.zeros(0, np.uint64), np.zeros(0, np.int64)
        for a in digests.sorted():
            if not len(a):
                continue
            first = np.ones(len(a), dtype=bool)
            first[1:] = (a[1:, 0] != a[:-1, 0]) | (a[1:, 1] != a[:-1, 1])
            starts = np.flatnonzero(first)
            rep = a[starts, 2][np.cumsum(first) - 1]
            sp.drops.add(a[~first, 3:5], rep[~first])
            sizes = np.diff(np.append(starts, len(a)))
            groups += int(np.count_nonzero(sizes > 1))
            removed += int(np.count_nonzero(~first))
            top_reps, top_sizes = _largest(np.concatenate([top_reps, a[starts[sizes > 1], 2]]),
                                           np.concatenate([top_sizes, sizes[sizes > 1]]))
        digests.remove()
        self.report = {"docs": sp.rows, "groups": groups, "removed": removed, "hash": self.hash,
                       "normalize": self.normalize}
        sp.finish(self, top_reps, top_sizes)


class FuzzyDedupStep(_DedupStep):
    """MinHash-LSH near-duplicate removal; shingles for exact verification go to `workdir`."""

    name = "fuzzy_dedup"
    reason = "near_duplicate"

    config_class = FuzzyDedupConfig

    def __init__(self, config: FuzzyDedupConfig | None = None, /, *, seed: int = 0, **kw: Any):
        super().__init__(config, **kw)
        c = self.config
        self.params = FuzzyParams(
            threshold=c.threshold, num_perm=c.num_perm, bands=c.bands, rows=c.rows, fp_weight=c.fp_weight,
            fn_weight=c.fn_weight, shingle=ShingleSpec(c.shingle, c.ngram), verify=c.verify,
            max_bucket=c.max_bucket, seed=seed)
        self.sketcher = Sketcher(self.params)  # validates bands/rows now
        self.workdir = _workdir(self, c.workdir)

    def __repr__(self) -> str:  # stable across runs (part of the resume fingerprint)
        return f"FuzzyDedupStep(name={self.name!r}, params={self.params!r}, spill={self.config.spill})"

    def observe(self, batch: list[Doc]) -> tuple[list[str], Any]:
        spill = self.workdir / "shingles"
        spill.mkdir(parents=True, exist_ok=True)
        return [d["id"] for d in batch], self.sketcher.sketch([d["text"] for d in batch], spill)

    def fit(self, partials: Iterable[tuple[list[str], Any]]) -> None:
        work = self.workdir
        sp = _SpillFit(work / "fit") if self.config.spill else None
        ids: list[str] = []
        index_dir = work / "index"
        with MinHashDedup(self.params, index_dir) as dd:
            for batch_ids, sketch in partials:
                if sp is None:
                    ids.extend(batch_ids)
                else:
                    sp.add_ids(batch_ids)
                dd.add_sketch(sketch)
            # spill: each band sorted one hash partition at a time (same pairs)
            pairs, _, self.report = dd.verified_pairs(partitions=64 if sp is not None else 1)
        shutil.rmtree(index_dir, ignore_errors=True)
        shutil.rmtree(work / "shingles", ignore_errors=True)
        if sp is None:
            _check_unique(ids, self.name)
            res = cluster_pairs(len(ids), pairs)
            self.report.update(clusters=len(res.sizes()), removed=res.n_removed)
            self._set_clusters(ids, res.rep)
            return
        sp.check_unique(self.name)
        nodes, rep = component_reps(pairs)  # memory follows the pairs, not the corpus
        dup = rep != nodes
        sp.drop_rows(nodes[dup], rep[dup])
        reps, sizes = np.unique(rep, return_counts=True)
        self.report.update(clusters=len(reps), removed=int(np.count_nonzero(dup)))
        sp.finish(self, *_largest(reps, sizes))


class SemanticDedupStep(_DedupStep):
    """Embedding-cosine dedup (sentence-transformers model, or the hashed TF-IDF fallback)."""

    name = "semantic_dedup"
    reason = "semantic_duplicate"

    config_class = SemanticDedupConfig

    def __init__(self, config: SemanticDedupConfig | None = None, /, **kw: Any):
        super().__init__(config, **kw)
        self.embedder = make_embedder(self.config.model)
        self.threshold = self.embedder.default_threshold if self.config.threshold is None else self.config.threshold

    def __repr__(self) -> str:
        return f"SemanticDedupStep(name={self.name!r}, embedder={self.embedder.kind}, threshold={self.threshold})"

    def observe(self, batch: list[Doc]) -> tuple[list[str], Any]:
        texts = [d["text"] for d in batch]
        if isinstance(self.embedder, TfidfEmbedder):  # IDF needs the whole corpus: counts now
            return [d["id"] for d in batch], self.embedder.counts(texts)
        return [d["id"] for d in batch], self.embedder.embed(texts)

    def fit(self, partials: Iterable[tuple[list[str], Any]]) -> None:
        import scipy.sparse as sp

        ids: list[str] = []
        parts = []
        for batch_ids, emb in partials:
            ids.extend(batch_ids)
            parts.append(emb)
        _check_unique(ids, self.name)
        if not ids:
            self._set_clusters([], np.zeros(0, np.int64))
            return
        if isinstance(self.embedder, TfidfEmbedder):
            emb = self.embedder.finalize(sp.vstack(parts).tocsr())
        else:
            emb = np.concatenate(parts)
        res = cluster_embeddings(emb, self.threshold)
        self.report = {**res.stats, "embedder": self.embedder.kind}
        self._set_clusters(ids, res.clusters.rep)


def build_dedup_steps(cfg: DedupConfig, seed: int = 0) -> list[GlobalStep]:
    """The enabled levels of a `curate.dedup` block, in order: exact, fuzzy, semantic."""
    steps: list[GlobalStep] = []
    if cfg.exact.enabled:
        steps.append(ExactDedupStep(cfg.exact))
    if cfg.fuzzy.enabled:
        steps.append(FuzzyDedupStep(cfg.fuzzy, seed=seed))
    if cfg.semantic.enabled:
        steps.append(SemanticDedupStep(cfg.semantic))
    return steps
