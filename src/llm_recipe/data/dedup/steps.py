"""Dedup as pipeline steps (`pipeline.GlobalStep`: observe -> fit -> process).

observe  (workers)  per batch: ids + a small summary (digests / MinHash sketch / embeddings)
fit      (driver)   all summaries in corpus order -> clusters -> {dropped id: kept id}
process  (workers)  drop the documents in that map, with the kept id in the audit record

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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ...config.curate import DedupConfig, ExactDedupConfig, FuzzyDedupConfig, SemanticDedupConfig
from ..pipeline import Doc, GlobalStep, PipelineError, Tally
from .exact import ExactDedup, content_digest
from .fuzzy import FuzzyParams, MinHashDedup, Sketcher
from .semantic import TfidfEmbedder, cluster_embeddings, make_embedder
from .shingles import ShingleSpec


def _check_unique(ids: list[str], step: str) -> None:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise PipelineError(f"{step}: document id '{dup}' occurs more than once; dedup needs unique ids")


class _DedupStep(GlobalStep):
    reason = "duplicate"

    def __init__(self, config: Any = None, /, **kw: Any) -> None:
        super().__init__(config, **kw)
        self.drop_map: dict[str, str] = {}
        self.report: dict[str, Any] = {}

    def _set_clusters(self, ids: list[str], rep: np.ndarray, top: int = 10) -> None:
        removed = np.flatnonzero(rep != np.arange(len(rep)))
        self.drop_map = {ids[i]: ids[rep[i]] for i in removed.tolist()}
        sizes = np.bincount(rep, minlength=len(rep))
        big = np.argsort(-sizes, kind="stable")[:top]
        self.report["largest_clusters"] = [
            {"kept": ids[i], "size": int(sizes[i])} for i in big.tolist() if sizes[i] > 1
        ]
        self.fitted = True

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        kept = []
        for doc in batch:
            k = self.drop_map.get(doc["id"])
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

    def observe(self, batch: list[Doc]) -> tuple[list[str], list[bytes]]:
        return [d["id"] for d in batch], [content_digest(d["text"], self.hash, self.normalize) for d in batch]

    def fit(self, partials: Iterable[tuple[list[str], list[bytes]]]) -> None:
        dd, ids, reps = ExactDedup(), [], []
        for batch_ids, digests in partials:
            ids.extend(batch_ids)
            reps.append(dd.add(digests))
        _check_unique(ids, self.name)
        self.report = {**dd.stats(), "hash": self.hash, "normalize": self.normalize}
        self._set_clusters(ids, np.concatenate(reps) if reps else np.zeros(0, np.int64))


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
        self._own_workdir = c.workdir is None
        self.workdir = str(c.workdir or tempfile.mkdtemp(prefix="llm-recipe-fuzzy-"))

    def __repr__(self) -> str:  # stable across runs (part of the resume fingerprint)
        return f"FuzzyDedupStep(name={self.name!r}, params={self.params!r})"

    def observe(self, batch: list[Doc]) -> tuple[list[str], Any]:
        spill = Path(self.workdir) / "shingles"
        spill.mkdir(parents=True, exist_ok=True)
        return [d["id"] for d in batch], self.sketcher.sketch([d["text"] for d in batch], spill)

    def fit(self, partials: Iterable[tuple[list[str], Any]]) -> None:
        ids: list[str] = []
        index_dir = Path(self.workdir) / "index"
        with MinHashDedup(self.params, index_dir) as dd:
            for batch_ids, sketch in partials:
                ids.extend(batch_ids)
                dd.add_sketch(sketch)
            res = dd.finish()
        _check_unique(ids, self.name)
        shutil.rmtree(index_dir, ignore_errors=True)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.report = dict(res.stats)
        self._set_clusters(ids, res.clusters.rep)


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
