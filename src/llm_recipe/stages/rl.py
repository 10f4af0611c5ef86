"""Stage 5c: RL from the SFT model against the reward sources (reward models, verifiers, functions,
reward servers, rules): one stage function for every algorithm on the shared RL loop
(`train.rl_loop`); each algorithm is a row of `ALGORITHMS`.

    PPO, GRPO, RLOO, REINFORCE_PP   <run>/ppo, <run>/grpo, <run>/rloo, <run>/reinforce_pp (model,
                                    metrics, plots, summary.json)
    rl_prompts(rl_cfg, seed)        (train, held-out) prompts and their columns: the `task`'s (its
                                    train split; its test split held out), else `prompts` files,
                                    else the style set's prompts (`style_prompts`, `demo.style`)
    build_scorer(rl_cfg, refs, rm)  the section's `rewards:` sources (`rewards.sources`; a `{kind:
                                    rm}` source without a path takes `rm`), else the reward models
                                    it is given (`RunContext.reward_model_refs`), else its rules
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import console
from ..config import RL_SECTIONS, RewardModelRef, RLConfig
from ..demo.style import single_turn_examples
from ..files import read_json
from ..models.loading import load_causal_lm, load_tokenizer
from ..models.placement import compute_device
from ..rewards.sources import build_rewards, legacy_sources, source_files
from ..rewards.tasks import rl_prompt_split, task_files
from ..seeds import seed_for
from ..train.defaults import fit_stage
from ..train.grpo import run_grpo
from ..train.interrupt import StoppedEarly
from ..train.ppo import load_critic, run_ppo
from ..train.rl_algorithms import run_objective
from ..train.rl_loop import RLResult, RLSetup
from ..train.run_folder import model_key, prepare_run, run_key
from .context import Artifacts, RunContext
from .contract import Stage


@dataclass(frozen=True)
class Algorithm:
    name: str  # its section (`ppo:`), folder and artifact (`ppo_model`)
    title: str
    # (setup, fitted section, run folder, seed, full config, the critic's source model) -> RLResult
    train: Callable[..., RLResult]


def _ppo(setup: RLSetup, section, run_dir, seed: int, full_config, critic_source: str) -> RLResult:
    critic = load_critic(critic_source) if section.value_model == "reward_model" else None
    return run_ppo(setup, section, run_dir, seed, critic=critic, full_config=full_config)


def _grpo(setup: RLSetup, section, run_dir, seed: int, full_config, critic_source: str) -> RLResult:
    return run_grpo(setup, section, run_dir, seed, full_config=full_config)


def _critic_free(name: str) -> Callable[..., RLResult]:
    """An algorithm whose objective `train.rl_algorithms.OBJECTIVES` holds (no value model)."""
    def train(setup: RLSetup, section, run_dir, seed: int, full_config, critic_source: str) -> RLResult:
        return run_objective(name, setup, section, run_dir, seed, full_config=full_config)
    return train


ALGORITHMS = {a.name: a for a in (Algorithm("ppo", "PPO", _ppo), Algorithm("grpo", "GRPO", _grpo),
                                  Algorithm("rloo", "RLOO", _critic_free("rloo")),
                                  Algorithm("reinforce_pp", "REINFORCE++", _critic_free("reinforce_pp")))}
if set(ALGORITHMS) != set(RL_SECTIONS):  # one list of algorithms: the config's sections and these rows
    raise ImportError(f"RL algorithms {sorted(ALGORITHMS)} and config sections {sorted(RL_SECTIONS)} differ")


def _init(ctx: RunContext, name: str) -> str:
    return ctx.require_start_model(name, getattr(ctx.cfg, name))


def _rm_dir(ctx: RunContext) -> str | None:
    """The command line's reward model, else the run's (a separate value model starts from it)."""
    return str(ctx.reward_models[0].path) if ctx.reward_models else ctx.reward_model()


def _run_key(ctx: RunContext, name: str) -> dict:
    """Settings, seed, starting model, reward model and, by content, the prompt files, the task's
    data and the files of the reward functions."""
    section, rm = getattr(ctx.cfg, name), _rm_dir(ctx)
    inputs = [*(section.prompts or []), *task_files(section.task), *source_files(section.rewards or [])]
    return run_key(section, seed=ctx.cfg.seed, inputs=inputs, base=_init(ctx, name),
                   reward_model=model_key(rm) if rm is not None else None)


def run_rl(ctx: RunContext, name: str) -> Artifacts:
    """`name`'s algorithm from the starting model (the SFT model) against the reward sources, else the
    reward model(s), else the rules, into <run>/<name>/; logs the held-out figures before and after."""
    algo, section = ALGORITHMS[name], getattr(ctx.cfg, name)
    run_dir, init = ctx.out / name, _init(ctx, name)
    if not prepare_run(run_dir, _run_key(ctx, name), section.resume, name):
        tokenizer = load_tokenizer(init)
        policy = load_causal_lm(init, section.compute.dtype)
        section, _ = fit_stage(name, section, policy, lora=section.lora is not None)  # run.json records the fitted section
        scorer = build_scorer(section, ctx.reward_model_refs(section), _rm_dir(ctx))
        setup = RLSetup.build(policy, tokenizer, scorer, chat_format=section.chat_format, lora=section.lora,
                              **rl_prompts(section, ctx.cfg.seed))
        res = algo.train(setup, section, run_dir, ctx.cfg.seed, ctx.cfg.model_copy(update={name: section}),
                         _rm_dir(ctx) or init)
        if res.model_dir is None:  # stopped (SIGTERM) after a checkpoint: later stages must not run
            raise StoppedEarly(f"{algo.title} stopped after iteration {len(res.history)} (checkpoint saved); "
                               "run the same command again to resume")
    _log(name, read_json(run_dir / "summary.json"), section.success_prefix)
    return {f"{name}_model": str(run_dir / "model")}


def _log(name: str, summary: dict, prefix: str | None) -> None:
    b, a = summary["before"], summary["after"]
    if not a:
        return
    style = f"held-out answers starting with {prefix!r}: {b['success']:.0%} -> {a['success']:.0%}; " if prefix else ""
    sources = "".join(f"{k.split('/')[1]} {b[k]:.2f} -> {a[k]:.2f}; " for k in a
                      if k.startswith("rewards/") and k.endswith("/mean") and k in b)  # each reward source
    console.log(f"{name}: {style}{sources}reward {b['score']:.2f} -> {a['score']:.2f}; KL to the SFT model "
                f"{a['kl']:.1f} nats ({summary.get('iterations', '?')} iterations)")


def style_prompts(cfg: RLConfig, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) prompts: from `cfg.prompts` files, or the style set's prompts (a seed
    different from the SFT set's). Held-out prompts are never trained on."""
    if cfg.prompts:  # the files' prompts, split and checked in one place
        split = rl_prompt_split(None, cfg.prompts, cfg.n_prompts, cfg.eval_prompts)
        return split.train_prompts, split.eval_prompts
    prompts = [p for p, _ in single_turn_examples(4 * (cfg.n_prompts + cfg.eval_prompts),
                                                   seed=seed_for("bundled_prompts", seed))]
    n_eval = min(cfg.eval_prompts, max(len(prompts) // 5, 1))
    return prompts[n_eval : n_eval + cfg.n_prompts], prompts[:n_eval]


def rl_prompts(cfg: RLConfig, seed: int) -> dict:
    """RLSetup.build's prompts: the task's or the prompt files' (with their columns), else the style set's."""
    split = rl_prompt_split(cfg.task, cfg.prompts, cfg.n_prompts, cfg.eval_prompts)
    if split is None:
        train_p, eval_p = style_prompts(cfg, seed)
        return {"train_prompts": train_p, "eval_prompts": eval_p}
    return {"train_prompts": split.train_prompts, "eval_prompts": split.eval_prompts,
            "train_columns": split.train_columns, "eval_columns": split.eval_columns}


def build_scorer(cfg: RLConfig, refs: list[RewardModelRef], rm_dir: str | None = None):
    """The section's `rewards:` sources, else the reward models (weighted), else the rules; one
    `rewards.Rewards` either way (each source logged separately)."""
    sources = cfg.rewards if cfg.rewards is not None else legacy_sources(refs, cfg.rules)
    return build_rewards(sources, rm_dir, dtype=cfg.compute.dtype, device=compute_device(cfg.compute))


def _stage(name: str) -> Stage:
    return Stage(name, lambda ctx: run_rl(ctx, name), lambda ctx: _run_key(ctx, name),
                 lambda cfg: getattr(cfg, name) is not None, section=name)


PPO, GRPO, RLOO, REINFORCE_PP = _stage("ppo"), _stage("grpo"), _stage("rloo"), _stage("reinforce_pp")
