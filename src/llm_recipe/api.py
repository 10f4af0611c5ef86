"""The public Python API: each stage as one call, the way the CLI runs it.

```python
import llm_recipe

run = llm_recipe.sft("runs/demo/pretrain/model", [{"messages": [...]}, ...], output_dir="runs/mine",
                     max_steps=200, learning_rate=1e-4)          # TRL's names work too
aligned = llm_recipe.dpo(run.model_dir, "pairs.parquet", output_dir="runs/mine", beta=0.1)
report = llm_recipe.evaluate("runs/mine")
print(aligned.model_dir, aligned.metrics["eval_reward_accuracy"], report.figures)
```

Every function takes a model (a folder, a hub id, or a loaded `transformers` model with its
tokenizer), data (a path or several, a `datasets.Dataset`, or a list of dicts: every TRL format
the stage reads), a config (a `RecipeConfig`, a recipe YAML or bundled name, or None for the
defaults) and keyword overrides of the stage's section (`max_steps=10`, `lr=1e-4`, TRL's
`learning_rate=1e-4`, or dotted paths from the top: `overrides={"generate.sampling.max_new_tokens":
8}`). It writes the same run folder as the command (`<output_dir>/<stage>/`) and returns a `Result`:
the model folder, the stage's headline figures and its last evaluation record.

In-memory data (a Dataset or a list) is written to `<output_dir>/inputs/<stage>.jsonl` first, so
the run is hashed and reproducible like a file run; a loaded model is saved to
`<output_dir>/inputs/<stage>-model/` (pass `tokenizer=`). Each call writes the run's resolved
config to `<output_dir>/recipe.yaml` and the next call into the same folder starts from it (its
sections, its seed), so sft -> dpo -> evaluate make one run folder, as `llm-recipe run` does.

This module is a thin layer over today's stage functions (`llm_recipe.stages`): each call builds
the config and calls one stage, as `llm-recipe <command>` does. Nothing heavy is imported until a
function runs (`import llm_recipe` stays cheap).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # pragma: no cover - types only
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .config import RecipeConfig

__all__ = ["Result", "curate", "dpo", "evaluate", "grpo", "reinforce_pp", "reward_model", "rloo", "sft"]

PathLike = Union[str, "os.PathLike[str]"]
ModelLike = Union[PathLike, "PreTrainedModel"]
DataLike = Union[PathLike, Sequence[PathLike], "datasets.Dataset", Sequence[Mapping[str, Any]]]
ConfigLike = Union["RecipeConfig", PathLike, None]


@dataclass(frozen=True)
class Result:
    """What a stage made.

    Attributes:
        stage: the stage's name (`sft`, `dpo`, `reward_model`, `grpo`, `rloo`, `reinforce_pp`, `curate`,
            `eval`).
        output_dir: the run folder the stage wrote into (`<output_dir>/<stage>/` inside it).
        model_dir: the trained model's folder (None for curate and evaluate).
        figures: the stage's headline figures (as `llm-recipe run` prints them), e.g. SFT's format
            following before/after, DPO's style success, GRPO's score before/after; curation's
            counts; evaluation: every model's row of the evaluation table.
        metrics: the last evaluation record of the stage's `metrics.jsonl` (`eval_loss`,
            `eval_reward_accuracy`, ...), {} when the stage evaluates otherwise.
    """

    stage: str
    output_dir: Path
    model_dir: Path | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def _config(config: ConfigLike, section: str | None, output_dir: PathLike | None, seed: int | None,
            section_overrides: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> RecipeConfig:
    """The recipe config: `config` (object, YAML, bundled name or defaults) with the overrides."""
    from .config import RecipeConfig, load_config
    from .config.recipe import _set_dotted, canonical_key
    from .files import set_max_record_bytes

    if config is None and output_dir is not None and (Path(output_dir) / "recipe.yaml").is_file():
        config = Path(output_dir) / "recipe.yaml"  # the run so far (earlier calls into the same folder)
    dotted = {**{f"{section}.{k}": v for k, v in section_overrides.items()}, **(overrides or {})}
    if seed is not None:
        dotted["seed"] = seed
    if output_dir is not None:
        dotted["output_dir"] = str(output_dir)
    if isinstance(config, RecipeConfig):
        tree = config.model_dump(mode="json")
        for k, v in dotted.items():
            _set_dotted(tree, canonical_key(k), v)
        cfg = RecipeConfig.model_validate(tree)
    else:
        cfg = load_config(config, dotted)
    if section is not None and getattr(cfg, section) is None:  # the stage's defaults, as the CLI opens it
        from .config.recipe import _section_class

        cls = _section_class(RecipeConfig.model_fields[section].annotation)
        cfg = cfg.model_copy(update={section: cls.model_validate({"compute": cfg.compute.model_dump()}
                                                                 if "compute" in cls.model_fields else {})})
    set_max_record_bytes(int(cfg.max_record_mb * 2**20))
    return cfg


def _data_files(data: DataLike, cfg: RecipeConfig, name: str) -> list[Path]:
    """Paths as they are; a Dataset or a list of dicts written to `<output_dir>/inputs/<name>.jsonl`."""
    from .files import write_jsonl

    if isinstance(data, (str, os.PathLike)):
        return [Path(data)]
    if isinstance(data, Sequence) and data and all(isinstance(d, (str, os.PathLike)) for d in data):
        return [Path(d) for d in data]  # type: ignore[arg-type]
    records: Iterable[Mapping[str, Any]] = data  # a datasets.Dataset iterates as dicts too
    path = Path(cfg.output_dir) / "inputs" / f"{name}.jsonl"
    if write_jsonl(path, (dict(r) for r in records)) == 0:
        raise ValueError(f"{name}: no records given")
    return [path]


def _model_path(model: ModelLike, tokenizer: PreTrainedTokenizerBase | None, cfg: RecipeConfig, name: str) -> str:
    """A folder or hub id as it is; a loaded model (with `tokenizer`) saved under inputs/ first."""
    if isinstance(model, (str, os.PathLike)):
        return str(model)
    if tokenizer is None:
        raise ValueError("a loaded model needs its tokenizer: pass tokenizer=")
    path = Path(cfg.output_dir) / "inputs" / f"{name}-model"
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)


def _save_recipe(cfg: RecipeConfig) -> None:
    """The run's resolved config as `<output_dir>/recipe.yaml` (as `llm-recipe run` writes it): the
    next call into the same folder starts from it, and `evaluate` finds every stage's settings."""
    from .config import dump_config
    from .console import is_main_process
    from .files import atomic_write

    if is_main_process():
        with atomic_write(Path(cfg.output_dir) / "recipe.yaml") as f:
            f.write(dump_config(cfg))


def _start_from(cfg: RecipeConfig, base: str) -> RecipeConfig:
    """SFT from a given model: the run starts from it (no pretraining), so the evaluation compares
    the SFT model with it. The run's own pretrained model keeps the run as it is."""
    from .config import ModelConfig

    own = Path(cfg.output_dir) / "pretrain" / "model"
    if Path(base).resolve() == own.resolve():
        return cfg
    return cfg.model_copy(update={"pretrain": None, "model": ModelConfig(name_or_path=base)})


def _stage(cfg: RecipeConfig, target: str, model: str | None = None, reward_model: str | None = None,
           force: bool = False) -> dict:
    """Run `target` the way its command does (`recipe.run_stages` over the run folder's finished
    stages): its artifacts."""
    from .config import RewardModelRef
    from .recipe import run_stages
    from .stages.context import RunContext

    refs = [RewardModelRef(path=str(reward_model))] if reward_model else None
    return run_stages(RunContext.of_folder(cfg, model=model, reward_models=refs, force=force), target)


def _last_eval(stage_dir: Path) -> dict[str, float]:
    log = stage_dir / "metrics.jsonl"
    if not log.is_file():
        return {}
    evals = [r for r in map(json.loads, log.read_text(encoding="utf-8").splitlines())
             if any(k.startswith("eval_") for k in r)]
    return {k: v for k, v in evals[-1].items() if isinstance(v, (int, float))} if evals else {}


def _result(stage: str, cfg: RecipeConfig, folder: str, model_dir: Path | None) -> Result:
    from .report.headline import headline_results

    out = Path(cfg.output_dir)
    figures = headline_results(out).get({"reward_model": "rm"}.get(stage, stage), {})
    return Result(stage, out, Path(model_dir) if model_dir else None, figures, _last_eval(out / folder))


def sft(model: ModelLike, data: DataLike, *, output_dir: PathLike | None = None, config: ConfigLike = None,
        seed: int | None = None, tokenizer: PreTrainedTokenizerBase | None = None,
        overrides: Mapping[str, Any] | None = None, **section: Any) -> Result:
    """Supervised fine-tuning of `model` on `data` (`llm-recipe sft`).

    Args:
        model: the model to fine-tune: a folder, a hub id, or a loaded model (with `tokenizer`).
        data: SFT records in any TRL format (`messages` incl. tools, `text`, prompt/completion,
            ShareGPT, Alpaca): a path (JSONL, Parquet, CSV, a datasets folder, a hub name) or
            several, a `datasets.Dataset`, or a list of dicts.
        output_dir: the run folder (default: the config's `output_dir`); writes `<output_dir>/sft/`.
        config: a `RecipeConfig`, a recipe YAML path or bundled name, or None (the defaults).
        seed: the global seed (default: the config's).
        tokenizer: the tokenizer of a loaded `model`.
        overrides: dotted overrides from the top of the config (`{"generate.sampling.top_k": 20}`).
        **section: fields of the `sft:` section (`max_steps=100`, `lr=2e-5`, TRL's
            `learning_rate=2e-5`, `lora={"r": 16}`, `format="tokenizer"`).

    Returns:
        The model folder, the held-out format-following figures and the last eval record.
    """
    cfg = _config(config, "sft", output_dir, seed, section, overrides)
    cfg.sft.data = _data_files(data, cfg, "sft")
    base = _model_path(model, tokenizer, cfg, "sft")
    cfg.sft.init_from = base
    cfg = _start_from(cfg, base)
    model_dir = _stage(cfg, "sft")["sft_model"]
    _save_recipe(cfg)
    return _result("sft", cfg, "sft", model_dir)


def dpo(model: ModelLike, data: DataLike | None = None, *, output_dir: PathLike | None = None,
        config: ConfigLike = None, seed: int | None = None, tokenizer: PreTrainedTokenizerBase | None = None,
        overrides: Mapping[str, Any] | None = None, **section: Any) -> Result:
    """DPO and its variants (`loss_type`: sigmoid, cdpo, robust, ipo, simpo, orpo, kto) from an SFT
    model (`llm-recipe dpo`).

    Args:
        model: the policy and reference: a folder, a hub id, or a loaded model (with `tokenizer`).
        data: preference records in any shape (TRL's explicit / implicit prompt, standard or
            conversational; unpaired KTO; rankings, scores, UltraFeedback, graded); None: the
            generated style set.
        output_dir, config, seed, tokenizer, overrides: as for `sft`.
        **section: fields of the `dpo:` section (`beta=0.1`, `loss_type="ipo"`, `max_steps=60`).

    Returns:
        The model folder, the style figures (style set) and the last eval record
        (`eval_reward_accuracy`, `eval_reward_margin`, ...).
    """
    cfg = _config(config, "dpo", output_dir, seed, section, overrides)
    if data is not None:
        cfg.dpo.data = _data_files(data, cfg, "dpo")
    base = _model_path(model, tokenizer, cfg, "dpo")
    cfg.dpo.init_from = base
    model_dir = _stage(cfg, "dpo")["dpo_model"]
    _save_recipe(cfg)
    return _result("dpo", cfg, "dpo", model_dir)


def reward_model(model: ModelLike, data: DataLike | None = None, *, output_dir: PathLike | None = None,
                 config: ConfigLike = None, seed: int | None = None, tokenizer: PreTrainedTokenizerBase | None = None,
                 overrides: Mapping[str, Any] | None = None, **section: Any) -> Result:
    """A Bradley-Terry reward model from `model` on preference `data` (`llm-recipe rm train`).

    Args:
        model: the base (usually the SFT model): a folder, a hub id, or a loaded model.
        data: preference records in any shape (as for `dpo`); None: the generated style set.
        output_dir, config, seed, tokenizer, overrides: as for `sft`.
        **section: fields of the `rm:` section (`max_steps=50`, `pooling="mean"`).

    Returns:
        The reward model's folder, its held-out pairwise accuracy before/after, the last eval record.
    """
    cfg = _config(config, "rm", output_dir, seed, section, overrides)
    if data is not None:
        cfg.rm.data = _data_files(data, cfg, "rm")
    base = _model_path(model, tokenizer, cfg, "rm")
    cfg.rm.init_from = base
    model_dir = _stage(cfg, "rm")["reward_model"]
    _save_recipe(cfg)
    return _result("reward_model", cfg, "reward_model", model_dir)


def grpo(model: ModelLike, prompts: DataLike | None = None, *, reward_model: PathLike | None = None,
         output_dir: PathLike | None = None, config: ConfigLike = None, seed: int | None = None,
         tokenizer: PreTrainedTokenizerBase | None = None, overrides: Mapping[str, Any] | None = None,
         **section: Any) -> Result:
    """GRPO from a policy against a reward model or the section's rules (`llm-recipe grpo`).

    Args:
        model: the policy (usually the SFT model): a folder, a hub id, or a loaded model.
        prompts: `{"prompt"}` records (text or messages; TRL's prompt-only format) as a path, a
            Dataset or a list of dicts; None: the style set's prompts.
        reward_model: a reward model folder; None: the section's `reward_models` or its `rules`.
        output_dir, config, seed, tokenizer, overrides: as for `sft`.
        **section: fields of the `grpo:` section (`iterations=20`, `group_size=8`, TRL's
            `num_generations=8`, `beta=0.04`, `loss_type="dr_grpo"`).

    Returns:
        The policy's folder, score / success / KL before and after on held-out prompts.
    """
    return _critic_free("grpo", model, prompts, reward_model, output_dir, config, seed, tokenizer, overrides, section)


def rloo(model: ModelLike, prompts: DataLike | None = None, *, reward_model: PathLike | None = None,
         output_dir: PathLike | None = None, config: ConfigLike = None, seed: int | None = None,
         tokenizer: PreTrainedTokenizerBase | None = None, overrides: Mapping[str, Any] | None = None,
         **section: Any) -> Result:
    """RLOO (the leave-one-out baseline of each prompt's group) from a policy (`llm-recipe rloo`).

    Args and returns: as for `grpo`; `**section` takes the fields of the `rloo:` section.
    """
    return _critic_free("rloo", model, prompts, reward_model, output_dir, config, seed, tokenizer, overrides, section)


def reinforce_pp(model: ModelLike, prompts: DataLike | None = None, *, reward_model: PathLike | None = None,
                 output_dir: PathLike | None = None, config: ConfigLike = None, seed: int | None = None,
                 tokenizer: PreTrainedTokenizerBase | None = None, overrides: Mapping[str, Any] | None = None,
                 **section: Any) -> Result:
    """REINFORCE++ (the batch-normalized advantage, minus the group baseline) from a policy
    (`llm-recipe reinforce-pp`).

    Args and returns: as for `grpo`; `**section` takes the fields of the `reinforce_pp:` section.
    """
    return _critic_free("reinforce_pp", model, prompts, reward_model, output_dir, config, seed, tokenizer, overrides,
                        section)


def _critic_free(algo: str, model, prompts, reward_model, output_dir, config, seed, tokenizer, overrides,
                 section: Mapping[str, Any]) -> Result:
    """One critic-free RL stage (grpo, rloo, reinforce_pp): its folder, before / after and skips."""
    from .files import read_json

    cfg = _config(config, algo, output_dir, seed, section, overrides)
    part = getattr(cfg, algo)
    if prompts is not None:
        part.prompts = _data_files(prompts, cfg, algo)
    part.init_from = _model_path(model, tokenizer, cfg, algo)
    model_dir = _stage(cfg, algo, reward_model=str(reward_model) if reward_model else None)[f"{algo}_model"]
    _save_recipe(cfg)
    sm = read_json(Path(model_dir).parent / "summary.json")
    result = _result(algo, cfg, algo, model_dir)
    return Result(result.stage, result.output_dir, result.model_dir,
                  {**result.figures, "before": sm["before"], "after": sm["after"], "skipped": sm["counts"]},
                  result.metrics)


def curate(inputs: DataLike | None = None, *, output_dir: PathLike | None = None, config: ConfigLike = "curate",
           seed: int | None = None, overrides: Mapping[str, Any] | None = None, **section: Any) -> Result:
    """Curate a pretraining corpus (`llm-recipe curate`): normalization, filters, dedup, PII,
    mixing, every drop counted with its reason.

    Args:
        inputs: documents (`{"text", "id"?, "source"?}`) as files or folders, a Dataset or a list of
            dicts; None: the config's `curate.input.paths` (the bundled sample corpus when empty).
        output_dir, seed, overrides: as for `sft`.
        config: a recipe with a `curate:` section (default: the bundled `curate` recipe).
        **section: fields of the `curate:` section (`normalize={"nfkc": False}`).

    Returns:
        No model; figures: documents in/out, drops by step and the realized mixture; the curated
        files under `<output_dir>/curated/`.
    """
    from .files import read_json

    cfg = _config(config, "curate", output_dir, seed, section, overrides)
    if inputs is not None:
        cfg.curate.input.paths = _data_files(inputs, cfg, "curate")
    files = _stage(cfg, "corpus")["corpus_files"]
    _save_recipe(cfg)
    out = Path(cfg.output_dir) / "curated"
    s = read_json(out / "stats.json")
    mixture = out / "mixed" / "mixture.json"
    figures = {"records_in": s["records_in"], "docs_out": s["docs_out"], "dropped_by_step": s["dropped_by_step"],
               "files": [str(f) for f in files], "mixture": read_json(mixture) if mixture.exists() else None}
    return Result("curate", Path(cfg.output_dir), None, figures, {})


def evaluate(run_dir: PathLike, *, config: ConfigLike = None, seed: int | None = None, force: bool = False,
             overrides: Mapping[str, Any] | None = None, **section: Any) -> Result:
    """Evaluate every model of a run against its reference (`llm-recipe eval`): win rates (RM and
    judge, with intervals), KL, safety, sycophancy, format, diversity, perplexity.

    Args:
        run_dir: a run folder (what `llm-recipe run` or these functions wrote).
        config: default: the run's own `recipe.yaml` when it has one.
        seed, overrides: as for `sft`.
        force: recompute an existing `eval/report.json`.
        **section: fields of the `eval:` section (`n_prompts=40`, `judge_model=None`).

    Returns:
        No model; figures: every model's row of the evaluation table (`eval/report.json`).
    """
    run_dir = Path(run_dir)
    if config is None and (run_dir / "recipe.yaml").is_file():
        config = run_dir / "recipe.yaml"
    cfg = _config(config, "eval", run_dir, seed, section, overrides)
    report = _stage(cfg, "eval", force=force)["eval_report"]
    rows = json.loads(Path(report).read_text(encoding="utf-8")).get("models", {})
    return Result("eval", run_dir, None, rows, {})
