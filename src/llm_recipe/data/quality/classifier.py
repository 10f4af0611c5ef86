"""A fast text classifier: hashed n-gram features + logistic regression (scikit-learn).

Used twice: the quality classifier (reference high-quality text = 1 vs. random web text = 0)
and the harmful-content classifier (labelled seed set). Features are character n-grams by
default, which need no tokenizer and therefore work for Japanese; `analyzer="word"` for
space-separated text. The hashing trick keeps the model a fixed-size weight vector with no
vocabulary to store, so scoring is one sparse matrix-vector product per batch.

Saved as a directory: `classifier.json` (settings) + `weights.safetensors` (coef, intercept),
never a pickle.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

from ...files import read_json
from ..dedup.shingles import normalize_text


class NgramClassifier:
    def __init__(
        self,
        analyzer: str = "char",
        ngram_range: tuple[int, int] = (1, 4),
        n_features: int = 2**20,
        C: float = 4.0,
        seed: int = 0,
    ):
        if analyzer not in ("char", "char_wb", "word"):
            raise ValueError(f"analyzer must be char, char_wb or word, got {analyzer!r}")
        self.analyzer, self.ngram_range = analyzer, tuple(ngram_range)
        self.n_features, self.C, self.seed = n_features, C, seed
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    def _features(self, texts: Sequence[str]):
        vec = HashingVectorizer(
            analyzer=self.analyzer, ngram_range=self.ngram_range, n_features=self.n_features,
            alternate_sign=False, norm="l2", preprocessor=normalize_text, dtype=np.float32,
        )
        return vec.transform(list(texts))

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> NgramClassifier:
        y = np.asarray(labels, dtype=np.int64)
        if len(texts) != len(y):
            raise ValueError(f"{len(texts)} texts but {len(y)} labels")
        if set(np.unique(y).tolist()) != {0, 1}:
            raise ValueError("training needs both classes (labels 0 and 1)")
        x = self._features(texts).tocsc()
        # train on the hashed columns that occur (tens of thousands, not 2^20): same model,
        # far fewer weights for the solver to carry; unseen columns keep weight 0
        active = np.flatnonzero(np.diff(x.indptr))
        lr = LogisticRegression(C=self.C, solver="liblinear", max_iter=1000, random_state=self.seed)
        lr.fit(x[:, active].tocsr(), y)
        self.coef = np.zeros(self.n_features, dtype=np.float32)
        self.coef[active] = lr.coef_[0]
        self.intercept = float(lr.intercept_[0])
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(label = 1) per text."""
        if self.coef is None:
            raise RuntimeError("classifier is not trained (fit() or load() first)")
        if len(texts) == 0:
            return np.zeros(0)
        z = self._features(texts) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))

    def save(self, directory: str | os.PathLike) -> Path:
        if self.coef is None:
            raise RuntimeError("nothing to save: the classifier is not trained")
        return save_linear(directory, self.coef, self.intercept, "classifier.json", {
            "type": "hashed-ngram-logreg", "analyzer": self.analyzer, "ngram_range": list(self.ngram_range),
            "n_features": self.n_features, "C": self.C, "seed": self.seed,
        })

    @classmethod
    def load(cls, directory: str | os.PathLike) -> NgramClassifier:
        cfg, coef, intercept = load_linear(directory, "classifier.json", "not a saved n-gram classifier")
        clf = cls(cfg["analyzer"], tuple(cfg["ngram_range"]), cfg["n_features"], cfg["C"], cfg["seed"])
        clf.coef, clf.intercept = coef, intercept
        return clf


def save_linear(directory: str | os.PathLike, coef: np.ndarray, intercept: float, info_name: str, info: dict) -> Path:
    """A linear model as `weights.safetensors` (coef, intercept; never a pickle) + its JSON settings."""
    from safetensors.numpy import save_file

    from ...files import write_json

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / ".weights.safetensors.tmp"
    save_file({"coef": coef, "intercept": np.array([intercept], np.float32)}, str(tmp))
    os.replace(tmp, d / "weights.safetensors")
    write_json(d / info_name, info)
    return d


def load_linear(directory: str | os.PathLike, info_name: str, what: str) -> tuple[dict, np.ndarray, float]:
    from safetensors.numpy import load_file

    d = Path(directory)
    if not (d / info_name).exists():
        raise FileNotFoundError(f"{d}: {what} (no {info_name})")
    w = load_file(str(d / "weights.safetensors"))
    return read_json(d / info_name), w["coef"], float(w["intercept"][0])


def is_ngram_classifier_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / "classifier.json").exists()
