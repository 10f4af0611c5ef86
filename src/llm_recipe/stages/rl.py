"""Stage 5c: RL from the SFT model, PPO and GRPO, against the reward model (or rules).

    stage_ppo(cfg, sft_dir, rm_dir, out)    out/ppo (model, metrics, plots, summary.json)
    stage_grpo(cfg, sft_dir, rm_dir, out)   out/grpo
    style_prompts(rl_cfg, seed)             (train, held-out) prompts: `prompts` files, else the
                                            style set's prompts (`demo.style`)
    build_scorer(rl_cfg, rm_dir)            the section's `rewards:` sources, else its reward models, else the
                                            recipe's, else its rules (`rewards.sources`, one abstraction)
    stage_rl(cfg, kind, sft_dir, rm_dir, out)   any algorithm of `train.rl_algorithms` (rloo, reinforce_pp)
A finished stage (model and summary written) is skipped, as the recipe's other stages are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import RL_SECTIONS, GRPOConfig, PPOConfig, RecipeConfig, RLConfig
from ..demo.style import single_turn_examples
from ..files import is_complete
from ..models.loading import load_causal_lm, load_tokenizer
from ..models.placement import compute_device
from ..preference.candidates import read_prompts
from ..rewards.sources import build_rewards, legacy_sources
from ..rewards.tasks import rl_prompt_split
from ..train.defaults import fit_stage
from ..train.grpo import run_grpo
from ..train.interrupt import StoppedEarly
from ..train.metrics_log import MetricsLog
from ..train.ppo import load_critic, run_ppo
from ..train.rl_algorithms import run_rl
from ..train.rl_loop import RLResult, RLSetup
from ..train.run_folder import model_key, prepare_run, run_key


def stage_ppo(cfg: RecipeConfig, sft_model_dir: str | os.PathLike, rm_dir: str | os.PathLike | None,
              out: str | os.PathLike) -> RLResult:
    """Recipe stage: PPO from the SFT model against the reward model (or the rules) into `out/ppo`."""
    pcfg = cfg.ppo or PPOConfig()
    run_dir = Path(out) / "ppo"
    init = pcfg.init_from or sft_model_dir
    done = _finished_run(pcfg, "ppo", init, rm_dir, run_dir, cfg.seed)
    if done is not None:  # a finished stage is skipped, as the recipe's other stages are
        return done
    tokenizer = load_tokenizer(init)
    policy = load_causal_lm(init, pcfg.compute.dtype)
    pcfg, _ = fit_stage("ppo", pcfg, policy, lora=pcfg.lora is not None)  # run.json records the fitted section
    cfg = cfg.model_copy(update={"ppo": pcfg})
    scorer = build_scorer(pcfg, rm_dir)
    setup = RLSetup.build(policy, tokenizer, scorer, chat_format=pcfg.chat_format, lora=pcfg.lora,
                          **rl_prompts(pcfg, cfg.seed))
    critic = None
    if pcfg.value_model == "reward_model":
        critic = load_critic(rm_dir if rm_dir is not None else init)
    return _finished(run_ppo(setup, pcfg, run_dir, cfg.seed, critic=critic, full_config=cfg), "PPO")


def stage_grpo(cfg: RecipeConfig, sft_model_dir: str | os.PathLike, rm_dir: str | os.PathLike | None,
               out: str | os.PathLike) -> RLResult:
    """Recipe stage: GRPO from the SFT model against the reward model (or the rules) into `out/grpo`."""
    gcfg = cfg.grpo or GRPOConfig()
    init = gcfg.init_from or sft_model_dir
    done = _finished_run(gcfg, "grpo", init, rm_dir, Path(out) / "grpo", cfg.seed)
    if done is not None:
        return done
    tokenizer = load_tokenizer(init)
    policy = load_causal_lm(init, gcfg.compute.dtype)
    gcfg, _ = fit_stage("grpo", gcfg, policy, lora=gcfg.lora is not None)
    cfg = cfg.model_copy(update={"grpo": gcfg})
    setup = RLSetup.build(policy, tokenizer, build_scorer(gcfg, rm_dir), chat_format=gcfg.chat_format,
                          lora=gcfg.lora, **rl_prompts(gcfg, cfg.seed))
    return _finished(run_grpo(setup, gcfg, Path(out) / "grpo", cfg.seed, full_config=cfg), "GRPO")


def _finished_run(section: RLConfig, kind: str, init, rm_dir, run_dir: Path, seed: int) -> RLResult | None:
    """The finished run of these settings in `run_dir`, else None (`run_folder.prepare_run`)."""
    key = run_key(section, seed=seed, inputs=section.prompts or [], base=init,
                  reward_model=model_key(rm_dir) if rm_dir is not None else None)
    return finished_result(run_dir) if prepare_run(run_dir, key, section.resume, kind) else None


def _finished(res: RLResult, name: str) -> RLResult:
    if res.model_dir is None:  # stopped (SIGTERM) after a checkpoint: later stages must not run
        raise StoppedEarly(f"{name} stopped after iteration {len(res.history)} (checkpoint saved); "
                           "run the same command again to resume")
    return res


def style_prompts(cfg: RLConfig, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) prompts: from `cfg.prompts` files, or the style set's prompts (a seed
    different from the SFT set's). Held-out prompts are never trained on."""
    if cfg.prompts:
        # a conversation prompt is reduced to its last (user) turn: RL prompts are single-turn
        prompts = [d["prompt"] if isinstance(d["prompt"], str) else d["prompt"][-1]["content"]
                   for d in read_prompts(cfg.prompts)]
    else:
        prompts = [p for p, _ in single_turn_examples(4 * (cfg.n_prompts + cfg.eval_prompts), seed=20_000 + seed)]
    n_eval = min(cfg.eval_prompts, max(len(prompts) // 5, 1))
    return prompts[n_eval : n_eval + cfg.n_prompts], prompts[:n_eval]


def build_scorer(cfg: RLConfig, rm_dir: str | os.PathLike | None):
    """Reward models from the config, else the recipe's reward model, else the rules."""
    sources = cfg.rewards if cfg.rewards is not None else legacy_sources(cfg.reward_models, cfg.rules, rm_dir)
    return build_rewards(sources, rm_dir, dtype=cfg.compute.dtype, device=compute_device(cfg.compute))


def rl_prompts(cfg: RLConfig, seed: int) -> dict:
    """RLSetup.build's prompts: the task's or the prompt files' (with their columns), else the style set's."""
    split = rl_prompt_split(cfg.task, cfg.prompts, cfg.n_prompts, cfg.eval_prompts)
    if split is None:
        train_p, eval_p = style_prompts(cfg, seed)
        return {"train_prompts": train_p, "eval_prompts": eval_p}
    return {"train_prompts": split.train_prompts, "eval_prompts": split.eval_prompts,
            "train_columns": split.train_columns, "eval_columns": split.eval_columns}


def stage_rl(cfg: RecipeConfig, kind: str, sft_model_dir: str | os.PathLike, rm_dir: str | os.PathLike | None,
             out: str | os.PathLike) -> RLResult:
    """Recipe stage: RL algorithm `kind` (a `train.rl_algorithms` name without a value model: rloo,
    reinforce_pp) from the SFT model into `out/<kind>`; skipped when finished."""
    section = getattr(cfg, kind) or RL_SECTIONS[kind]()
    init = section.init_from or sft_model_dir
    run_dir = Path(out) / kind
    done = _finished_run(section, kind, init, rm_dir, run_dir, cfg.seed)
    if done is not None:
        return done
    tokenizer = load_tokenizer(init)
    policy = load_causal_lm(init, section.compute.dtype)
    section, _ = fit_stage(kind, section, policy, lora=section.lora is not None)
    cfg = cfg.model_copy(update={kind: section})
    setup = RLSetup.build(policy, tokenizer, build_scorer(section, rm_dir), chat_format=section.chat_format,
                          lora=section.lora, **rl_prompts(section, cfg.seed))
    return _finished(run_rl(kind, setup, section, run_dir, cfg.seed, full_config=cfg), kind.upper())


def finished_result(run_dir: Path) -> RLResult | None:
    """The result of an already finished run in `run_dir` (model and summary written), else None."""
    summary = run_dir / "summary.json"
    if not (is_complete(run_dir / "model") and summary.exists()):
        return None
    sm = json.loads(summary.read_text(encoding="utf-8"))
    return RLResult(run_dir / "model", sm["before"], sm["after"], MetricsLog(run_dir / "metrics.jsonl").read(),
                    sm["counts"])
