"""The whole recipe: one YAML, one section per stage, loaded and validated in one place.

CLI flags override fields with dotted paths (`--set pretrain.lr=1e-3`), validated the same way,
and every problem is a `ConfigError` of one line that names the file and the field.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from .curate import CurateConfig
from .section import ConfigError, Section, note
from .stages import (
    BoNConfig,
    ComputeConfig,
    ConstitutionalConfig,
    DPOConfig,
    EvalConfig,
    GenerateConfig,
    GRPOConfig,
    HHConfig,
    ModelConfig,
    OnlineDPOConfig,
    PPOConfig,
    PrefsConfig,
    PretrainConfig,
    RMConfig,
    SampleCorpusConfig,
    SFTConfig,
    TokenizerConfig,
    TrackingConfig,
)

# the training sections: each takes the recipe's `tracking:` block (project, run name) as its default
TRAINING_STAGES = ("pretrain", "sft", "rm", "ppo", "grpo", "dpo", "online_dpo")
# the stage sections that compute with models: each takes the recipe's `compute:` block as its default
COMPUTE_STAGES = ("pretrain", "generate", "sft", "prefs", "constitutional", "rm", "bon", "ppo", "grpo", "dpo",
                  "online_dpo", "eval", "hh")


class RecipeConfig(Section):
    seed: int = Field(0, description="the global seed: every stage's seed unless it has its own")
    output_dir: Path = Field(Path("runs/tiny"), description="the run folder every stage writes into")
    max_record_mb: float = Field(8.0, gt=0, description="a JSONL record (line) larger than this is skipped and "
                                 "counted as too_large, unread")
    compute: ComputeConfig = Field(ComputeConfig(), description="every stage's default `compute:` block")
    corpus: SampleCorpusConfig = SampleCorpusConfig()
    tokenizer: TokenizerConfig = Field(
        TokenizerConfig(), description="the tokenizer trained on the corpus (when the model brings none)")
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig | None = Field(
        None, description="None: no pretraining, the recipe starts from model.name_or_path (a preset model "
        "is always pretrained: its section defaults then)")
    generate: GenerateConfig = GenerateConfig()
    sft: SFTConfig | None = None
    curate: CurateConfig | None = Field(
        None, description="corpus curation (None: the bundled sample corpus, uncurated)")
    prefs: PrefsConfig | None = None
    rm: RMConfig | None = None
    bon: BoNConfig | None = None
    ppo: PPOConfig | None = Field(None, description="PPO against the reward model (None: not run)")
    grpo: GRPOConfig | None = Field(None, description="GRPO against the reward model or rules (None: not run)")
    dpo: DPOConfig | None = None
    online_dpo: OnlineDPOConfig | None = Field(None, description="iterative on-policy DPO (after `dpo:`)")
    constitutional: ConstitutionalConfig | None = Field(
        None, description="Constitutional AI data from the SFT model (after SFT; writes constitutional/)")
    eval: EvalConfig | None = Field(None, description="the evaluation of every model of the run")
    hh: HHConfig | None = Field(None, description="the helpful-harmless set of `sft.data: hh` / `dpo.data: hh` "
                                "(None: its defaults)")
    tracking: TrackingConfig | None = Field(
        None, description="every training stage's default `tracking:` block (tracker project and run name)")

    @model_validator(mode="before")
    @classmethod
    def _spread_tracking(cls, data: Any) -> Any:
        """A training section's `tracking:` = the recipe's with the section's own fields on top."""
        if not isinstance(data, dict) or not isinstance(data.get("tracking"), dict):
            return data
        out = dict(data)
        for name in TRAINING_STAGES:
            section = out.get(name)
            own = section.get("tracking") if isinstance(section, dict) else None
            if isinstance(section, dict) and (own is None or isinstance(own, dict)):
                out[name] = {**section, "tracking": {**data["tracking"], **(own or {})}}
        return out

    @model_validator(mode="before")
    @classmethod
    def _spread_compute(cls, data: Any) -> Any:
        """A stage's `compute:` = the recipe's `compute:` with the stage's own fields on top. (A
        recipe without `pretrain:` pretrains with the defaults unless it names a model to start from.)"""
        if not isinstance(data, dict) or not isinstance(data.get("compute", {}), dict):
            return data
        shared = data.get("compute") or {}
        out = dict(data)
        model = out.get("model") or {}
        if "pretrain" not in out and not (isinstance(model, dict) and model.get("name_or_path")):
            out["pretrain"] = {}
        for name in COMPUTE_STAGES:
            section = out.get(name, {} if name == "generate" else None)
            if isinstance(section, dict):
                own = section.get("compute") or {}
                out[name] = {**section, "compute": {**shared, **own} if isinstance(own, dict) else own}
        return out


BUNDLED_RECIPES = Path(__file__).parent.parent / "recipes"


def _format_error(source: str, err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
    if e["type"] == "extra_forbidden":
        msg = f"{source}: unknown key '{loc}'"
    elif e["type"] == "alias_clash":
        msg = f"{source}: {loc}: {e['msg']}"
    elif e["type"] == "moved_key":
        where = f"{loc}." if e["loc"] else ""
        new = e["ctx"]["new"]  # relative to the section, or from the top when it starts with '/'
        msg = f"{source}: '{where}{e['ctx']['old']}' moved to '{new[1:] if new.startswith('/') else where + new}'"
    else:
        got = e.get("input")
        shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
        msg = f"{source}: {loc}: {e['msg'].removeprefix('Value error, ')}{shown}"
    more = len(err.errors()) - 1
    return msg + (f" [+{more} more errors]" if more else "")


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        if node.get(k) is None:  # absent, or `lora: null` in the YAML: the override opens the section
            node[k] = {}
        node = node[k]
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: '{k}' is not a section")
    node[keys[-1]] = value


def _section_class(annotation) -> type | None:
    """The Section class a field holds (`X`, `X | None`), or None."""
    for a in (annotation, *typing.get_args(annotation)):
        if isinstance(a, type) and issubclass(a, Section):
            return a
    return None


def canonical_key(dotted: str) -> str:
    """An override's dotted key with other libraries' names (`Section.aliases`) replaced by the
    field they mean (`sft.learning_rate` -> `sft.lr`, said once), so an override of a field the recipe
    file sets replaces it."""
    cls: type | None = RecipeConfig
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if cls is None:
            break
        if part in cls.aliases:
            target = cls.aliases[part]
            note(f"'{part}' is read as '{target}' (llm-recipe's name for it)")
            return ".".join([*parts[:i], target, *parts[i + 1:]])
        field = cls.model_fields.get(part)
        cls = _section_class(field.annotation) if field is not None else None
    return dotted


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
        _set_dotted(tree, canonical_key(k), v)
    try:
        return RecipeConfig.model_validate(tree)
    except ValidationError as e:
        suffix = " (after overrides)" if overrides else ""
        raise ConfigError(_format_error(source + suffix, e)) from None


def dump_config(cfg: RecipeConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True, sort_keys=False)
