"""Pydantic config models: one YAML per recipe, one section per stage.

Every model forbids unknown keys so a typo (`lrr: 1e-3`) is an error that names the key and
the file instead of a silently ignored setting. CLI flags override fields with dotted paths
(`--set pretrain.lr=1e-3`), validated the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A config problem, already phrased as one line naming the file and the field."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SampleCorpusConfig(Section):
    """The bundled, generated corpus (see `llm_recipe.data.sample_corpus`)."""

    docs_per_source: int = Field(1000, ge=1, description="documents generated per source")
    seed: int = 0


class TokenizerConfig(Section):
    vocab_size: int = Field(4096, ge=300)
    min_frequency: int = Field(2, ge=1)
    # Train on at most this many characters: BPE training time grows with it, quality saturates.
    max_chars: int = Field(3_000_000, ge=1000)


class ModelConfig(Section):
    """Either a preset built from a transformers config, or any causal LM (hub id / local dir)."""

    preset: Literal["micro", "tiny", "small"] | None = "tiny"
    name_or_path: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False  # never on unless the user asks

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.name_or_path:
            object.__setattr__(self, "preset", None)
        if not self.preset and not self.name_or_path:
            raise ValueError("set either model.preset or model.name_or_path")
        return self


class TrainConfig(Section):
    """Settings of the shared training loop, common to every algorithm."""

    max_steps: int = Field(300, ge=1, description="optimizer steps")
    batch_size: int = Field(16, ge=1, description="micro-batch size per device")
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(3e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float | None = Field(1.0, gt=0)
    eval_every: int = Field(100, ge=1)
    eval_batches: int = Field(20, ge=1, description="validation batches per evaluation")
    log_every: int = Field(10, ge=1)
    save_every: int | None = Field(None, ge=1, description="checkpoint interval in steps")
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch default)")


class PretrainConfig(TrainConfig):
    block_size: int = Field(256, ge=8)
    val_fraction: float = Field(0.05, gt=0, lt=0.5)
    data: list[Path] | None = Field(
        None, description="JSONL/text files with a 'text' field; None: the bundled sample corpus"
    )


class GenerateConfig(Section):
    prompts: list[str] = Field(default_factory=lambda: ["東京は", "The capital of France"])
    max_new_tokens: int = Field(48, ge=1)
    temperature: float = Field(0.8, ge=0)
    top_k: int | None = Field(50, ge=1)
    top_p: float | None = Field(0.95, gt=0, le=1)
    repetition_penalty: float = Field(1.1, gt=0)


class RecipeConfig(Section):
    seed: int = 0
    output_dir: Path = Path("runs/tiny")
    corpus: SampleCorpusConfig = SampleCorpusConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    generate: GenerateConfig = GenerateConfig()


BUNDLED_RECIPES = Path(__file__).parent / "recipes"


def _format_error(source: str, err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
    if e["type"] == "extra_forbidden":
        msg = f"{source}: unknown key '{loc}'"
    else:
        got = e.get("input")
        shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
        msg = f"{source}: {loc}: {e['msg']}{shown}"
    more = len(err.errors()) - 1
    return msg + (f" [+{more} more errors]" if more else "")


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: '{k}' is not a section")
    node[keys[-1]] = value


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`["pretrain.lr=1e-3", "seed=3"]` -> {"pretrain.lr": 0.001, "seed": 3} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected KEY=VALUE, e.g. pretrain.lr=1e-3")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def resolve_recipe_path(path: str | os.PathLike) -> Path:
    """A path on disk, or the name of a bundled recipe (`tiny`)."""
    p = Path(path)
    if p.exists():
        return p
    bundled = BUNDLED_RECIPES / f"{path}.yaml"
    if bundled.exists():
        return bundled
    raise ConfigError(f"{path}: config file not found (and no bundled recipe of that name)")


def load_config(
    path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> RecipeConfig:
    """Load a recipe YAML (or the defaults when `path` is None) and apply dotted overrides."""
    source = "defaults"
    tree: dict[str, Any] = {}
    if path is not None:
        p = resolve_recipe_path(path)
        source = str(p)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{source}: cannot read config ({e})") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{source}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: top level must be a mapping, got {type(loaded).__name__}")
        tree = loaded
    for k, v in (overrides or {}).items():
        _set_dotted(tree, k, v)
    try:
        return RecipeConfig.model_validate(tree)
    except ValidationError as e:
        suffix = " (after overrides)" if overrides else ""
        raise ConfigError(_format_error(source + suffix, e)) from None


def dump_config(cfg: RecipeConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True, sort_keys=False)
