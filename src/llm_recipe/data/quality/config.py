"""The `curate.quality:` config block (model-based filters). Light: pydantic only."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    enabled: bool = False  # each needs a model or reference data, so none runs unasked
    sources: list[str] | None = None
    skip_sources: list[str] = Field(default_factory=list)


class QualityClassifierConfig(_Step):
    model: Path | None = Field(None, description="a saved n-gram classifier directory")
    reference: list[Path] = Field(default_factory=list, description="high-quality texts (label 1)")
    negatives: list[Path] = Field(default_factory=list, description="random web texts (label 0)")
    min_score: float = Field(0.5, ge=0, le=1, description="drop below this P(reference-like)")


class PerplexityConfig(_Step):
    model: Path | None = Field(None, description="causal LM directory, or a saved char n-gram LM")
    reference: list[Path] = Field(default_factory=list, description="no model: train a char n-gram LM on these")
    order: int = Field(5, ge=1, le=10, description="char n-gram LM order")
    max_perplexity: float = Field(1000.0, gt=0)
    max_length: int = Field(512, ge=8, description="tokens scored per document (causal LM)")
    batch_size: int = Field(8, ge=1)


class HarmfulConfig(_Step):
    model: Path | None = Field(None, description="HF text-classification dir or saved n-gram "
                               "classifier; None: train on the shipped seed set")
    seed_set: Path | None = Field(None, description="labelled JSONL {text, label}; None: the shipped one")
    positive_label: str = "harmful"
    threshold: float = Field(0.5, ge=0, le=1)
    batch_size: int = Field(16, ge=1)


class QualityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    classifier: QualityClassifierConfig = QualityClassifierConfig()
    perplexity: PerplexityConfig = PerplexityConfig()
    harmful: HarmfulConfig = HarmfulConfig()
