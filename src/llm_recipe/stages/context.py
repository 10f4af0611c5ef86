"""The run context every stage is called with, and the one rule for the model a stage starts from.

    ctx = RunContext(cfg)                      the resolved config, the run folder, the artifacts so
                                               far, the command line's model (-m) and reward models
    ctx.start_model(stage, section)            -m > SECTION.init_from > the run's previous artifact
                                               (SFT: the pretrained model; every later stage: the
                                               SFT model, else the pretrained one) > model.name_or_path
    ctx.require_start_model(stage, section)    the same, or one line saying what would give one
    ctx.reward_model(section)                  --rm > SECTION.reward_models > the run's reward model
    ctx.seed(stream, *index)                   a named seed stream (`llm_recipe.seeds`)
    ctx.sft_split()                            the SFT split (`train.sft_data.split_sft_data`), made once
    RunContext.of_folder(cfg)                  a context over a run folder's finished stages (what a
                                               single CLI command starts from)

Artifacts are named paths (`ARTIFACTS`: name -> where its stage leaves it); a stage returns the
artifacts it made and the runner (`stages.contract`) adds them to the context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import console
from ..config import RecipeConfig, RewardModelRef, SFTConfig
from ..demo.sft_set import sft_records
from ..files import MARKER, read_json
from ..seeds import seed_for
from ..train.sft_data import SFTSplit, split_sft_data

Artifacts = dict[str, Any]  # name -> path (str), or a list of paths (the corpus files)

# name -> where the stage that makes it leaves it in a run folder
ARTIFACTS = {
    "config": "recipe.yaml", "start_model": "model", "corpus": "curated", "tokenizer": "tokenizer",
    "pretrained_model": "pretrain/model", "pretrain_metrics": "pretrain/metrics.jsonl", "samples": "samples.jsonl",
    "sft_model": "sft/model", "sft_samples": "sft/samples.jsonl", "constitutional": "constitutional",
    "reward_model": "reward_model/model", "best_of_n_report": "best_of_n/report.json", "dpo_model": "dpo/model",
    "online_dpo_model": "online_dpo/model", "ppo_model": "ppo/model", "grpo_model": "grpo/model",
    "rloo_model": "rloo/model", "reinforce_pp_model": "reinforce_pp/model",
    "eval_report": "eval/report.json", "report": "report.html",
}
# the model a stage starts from when neither -m nor init_from says: the first of these the run has
PREVIOUS = {"sft": ("pretrained_model",)}
AFTER_SFT = ("sft_model", "pretrained_model")
_MADE_BY = {"sft_model": "an sft: section", "pretrained_model": "a pretrain: section"}
MARKERS = "stages"  # <run>/stages/<stage>.json: a finished stage's key and artifacts (`stages.contract`)


@dataclass
class RunContext:
    cfg: RecipeConfig
    artifacts: Artifacts = field(default_factory=dict)
    model: str | None = None  # the command line's starting model (-m)
    reward_models: list[RewardModelRef] | None = None  # the command line's reward models (--rm)
    force: bool = False  # recompute stages even when their marker says done (`eval --force`)
    timings: dict[str, float] = field(default_factory=dict)
    _splits: dict[str, SFTSplit] = field(default_factory=dict, repr=False)

    @property
    def out(self) -> Path:
        return Path(self.cfg.output_dir)

    def seed(self, stream: str, *index: int) -> int:
        return seed_for(stream, self.cfg.seed, *index)

    def start_model(self, stage: str, section: Any = None) -> str | None:
        """The model `stage` starts from (see the module docstring); None when there is none."""
        if self.model:
            return str(self.model)
        if section is not None and getattr(section, "init_from", None):
            return str(section.init_from)
        for name in PREVIOUS.get(stage, AFTER_SFT):
            if self.artifacts.get(name):
                return str(self.artifacts[name])
        return self.cfg.model.name_or_path

    def require_start_model(self, stage: str, section: Any = None) -> str:
        """`start_model`, or one line saying what would give one."""
        init = self.start_model(stage, section)
        if not init:
            earlier = " or ".join(_MADE_BY[name] for name in PREVIOUS.get(stage, AFTER_SFT))
            raise ValueError(f"{stage}: no model to start from: pass --model/-m (a model folder or hub id), set "
                             f"{stage}.init_from, or give the recipe {earlier} or model.name_or_path")
        return init

    def reward_model_refs(self, section: Any = None) -> list[RewardModelRef]:
        """--rm > SECTION.reward_models > the run's reward model; [] when there is none."""
        if self.reward_models:
            return list(self.reward_models)
        if section is not None and getattr(section, "reward_models", None):
            return list(section.reward_models)
        rm = self.artifacts.get("reward_model")
        return [RewardModelRef(path=str(rm))] if rm else []

    def reward_model(self) -> str | None:
        """The run's own reward model (the `rm` stage's, or a finished one in the folder)."""
        rm = self.artifacts.get("reward_model")
        return str(rm) if rm else None

    def sft_split(self, default: SFTConfig | None = None) -> SFTSplit:
        """The SFT data split exactly as SFT trains on it (made once); without an `sft:` section, the
        split of `default` (an error when there is none)."""
        sft = self.cfg.sft or default
        if sft is None:
            raise ValueError("this needs the recipe's SFT data: give the recipe an sft: section")
        cache_key = sft.model_dump_json()
        if cache_key not in self._splits:
            self._splits[cache_key] = split_sft_data(sft, self.cfg.seed, sft_records(sft, self.cfg.seed))
        return self._splits[cache_key]

    def use_sft_records(self, records) -> None:
        """SFT records a stage made itself (`sft.data: hh`): what every later `sft_split()` splits."""
        self._splits[self.cfg.sft.model_dump_json()] = split_sft_data(self.cfg.sft, self.cfg.seed, records)

    def add(self, artifacts: Artifacts) -> None:
        """A finished stage's artifacts; an imported starting model becomes `model.name_or_path`."""
        self.artifacts.update(artifacts)
        imported = artifacts.get("start_model")
        if imported and self.cfg.model.name_or_path != imported:
            self.cfg = self.cfg.model_copy(update={"model": self.cfg.model.model_copy(
                update={"name_or_path": str(imported)})})

    @classmethod
    def of_folder(cls, cfg: RecipeConfig, **kw: Any) -> RunContext:
        """The artifacts of a run folder's finished stages (their markers), else of the stage outputs
        that are complete (a folder written before markers existed)."""
        ctx = cls(cfg, **kw)
        ctx.add(finished_artifacts(ctx.out))
        return ctx


def finished_artifacts(run_dir: str | os.PathLike) -> Artifacts:
    """What the finished stages of a run folder made: every marker's artifacts that still exist, and
    the complete models of stages without a marker."""
    run_dir = Path(run_dir)
    arts: Artifacts = {}
    for marker in sorted((run_dir / MARKERS).glob("*.json")):
        try:
            made = read_json(marker).get("artifacts", {})
        except ValueError as e:
            console.log(f"ignoring {e}")
            continue
        arts.update({k: v for k, v in in_folder(made, run_dir).items() if exists(v)})
    for name, rel in ARTIFACTS.items():
        p = run_dir / rel
        if name not in arts and name.endswith("_model") and (p / MARKER).is_file():
            arts[name] = str(p)
    return arts


def relative_to_folder(artifacts: Artifacts, run_dir: Path) -> Artifacts:
    """Paths inside the run folder made relative to it (a moved or copied run folder stays valid)."""
    root = Path(run_dir).resolve()

    def rel(v: Any) -> Any:
        if isinstance(v, list):
            return [rel(x) for x in v]
        p = Path(v).resolve() if isinstance(v, str) and Path(v).exists() else None
        return str(p.relative_to(root)) if p is not None and p.is_relative_to(root) else v
    return {k: rel(v) for k, v in artifacts.items()}


def in_folder(artifacts: Artifacts, run_dir: Path) -> Artifacts:
    """`relative_to_folder` undone: relative paths are under `run_dir`."""
    def absolute(v: Any) -> Any:
        if isinstance(v, list):
            return [absolute(x) for x in v]
        return str(Path(run_dir) / v) if isinstance(v, str) and not Path(v).is_absolute() and \
            (Path(run_dir) / v).exists() else v
    return {k: absolute(v) for k, v in artifacts.items()}


def exists(value: Any) -> bool:
    if isinstance(value, list):
        return all(exists(v) for v in value)
    return isinstance(value, str) and Path(value).exists()
