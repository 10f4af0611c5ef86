"""The `curate.dedup:` config block (exact, fuzzy, semantic). Light: pydantic only.

Kept free of numpy/scikit-learn imports because `config.py` imports it to build the recipe
schema, and `llm-recipe --help` must stay instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _Step(_Section):
    # Off by default: dedup removes real documents (e.g. ~40% of the templated sample corpus
    # at Jaccard 0.8), so a recipe turns each level on deliberately.
    enabled: bool = False
    sources: list[str] | None = None
    skip_sources: list[str] = Field(default_factory=list)


class ExactDedupConfig(_Step):
    hash: Literal["xxh128", "sha1", "md5"] = "xxh128"
    normalize: Literal["none", "whitespace", "text"] = Field(
        "whitespace", description="none: raw bytes; whitespace: ignore spacing; text: + NFKC, lowercase")


class FuzzyDedupConfig(_Step):
    threshold: float = Field(0.8, gt=0, lt=1, description="Jaccard similarity of shingle sets")
    num_perm: int = Field(128, ge=8, le=1024)
    bands: int | None = Field(None, ge=1, description="None (with rows None): chosen from the S-curve")
    rows: int | None = Field(None, ge=1)
    fp_weight: float = Field(0.1, ge=0, description="S-curve false-positive area weight")
    fn_weight: float = Field(0.9, ge=0, description="S-curve false-negative area weight")
    shingle: Literal["char", "word"] = "char"
    ngram: int = Field(5, ge=1, description="shingle size in characters (char) or words (word)")
    verify: Literal["jaccard", "signature", "none"] = "jaccard"
    max_bucket: int = Field(64, ge=2, description="larger LSH buckets give star edges, not all pairs")
    workdir: Path | None = Field(None, description="spill directory (None: a temp dir)")


class SemanticDedupConfig(_Step):
    model: str = Field("auto", description="auto: packaged MiniLM if installed, else tfidf; "
                       "tfidf; packaged; or a local sentence-transformers directory")
    threshold: float | None = Field(None, gt=0, le=1, description="cosine; None: the embedder's default")


class DedupConfig(_Section):
    """Runs after the heuristic filters (fewer docs to hash), before PII redaction."""

    exact: ExactDedupConfig = ExactDedupConfig()
    fuzzy: FuzzyDedupConfig = FuzzyDedupConfig()
    semantic: SemanticDedupConfig = SemanticDedupConfig()
