"""Stage 5c: RL from the SFT model against the reward model (or rules): one stage function for
every algorithm on the shared RL loop (`train.rl_loop`); each algorithm is a row of `ALGORITHMS`.

    PPO, GRPO                   <run>/ppo, <run>/grpo (model, metrics, plots, summary.json)
    style_prompts(rl_cfg, seed) (train, held-out) prompts: `prompts` files, else the style set's
                                prompts (`demo.style`)
    build_scorer(rl_cfg, refs)  the reward models it is given (`RunContext.reward_model_refs`), else
                                the rules
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import console
from ..config import RewardModelRef, RLConfig
from ..demo.style import single_turn_examples
from ..files import read_json
from ..infer.reward import load_scorer
from ..models.loading import load_causal_lm, load_tokenizer
from ..models.placement import compute_device
from ..preference.candidates import read_prompts
from ..preference.rules import RuleScorer
from ..seeds import seed_for
from ..train.defaults import fit_stage
from ..train.grpo import run_grpo
from ..train.interrupt import StoppedEarly
from ..train.ppo import load_critic, run_ppo
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


ALGORITHMS = {a.name: a for a in (Algorithm("ppo", "PPO", _ppo), Algorithm("grpo", "GRPO", _grpo))}


def _init(ctx: RunContext, name: str) -> str:
    init = ctx.start_model(name, getattr(ctx.cfg, name))
    if not init:
        raise ValueError(f"{name}: give --model (the SFT model), {name}.init_from or model.name_or_path")
    return init


def _rm_dir(ctx: RunContext) -> str | None:
    """The command line's reward model, else the run's (a separate value model starts from it)."""
    return str(ctx.reward_models[0].path) if ctx.reward_models else ctx.reward_model()


def _run_key(ctx: RunContext, name: str) -> dict:
    section, rm = getattr(ctx.cfg, name), _rm_dir(ctx)
    return run_key(section, seed=ctx.cfg.seed, inputs=section.prompts or [], base=_init(ctx, name),
                   reward_model=model_key(rm) if rm is not None else None)


def run_rl(ctx: RunContext, name: str) -> Artifacts:
    """`name`'s algorithm from the starting model (the SFT model) against the reward model(s), else
    the rules, into <run>/<name>/; logs the held-out figures before and after."""
    algo, section = ALGORITHMS[name], getattr(ctx.cfg, name)
    run_dir, init = ctx.out / name, _init(ctx, name)
    if not prepare_run(run_dir, _run_key(ctx, name), section.resume, name):
        tokenizer = load_tokenizer(init)
        policy = load_causal_lm(init, section.compute.dtype)
        section, _ = fit_stage(name, section, policy, lora=section.lora is not None)  # run.json records the fitted section
        scorer = build_scorer(section, ctx.reward_model_refs(section))
        setup = RLSetup.build(policy, tokenizer, scorer, *style_prompts(section, ctx.cfg.seed),
                              chat_format=section.chat_format, lora=section.lora)
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
    console.log(f"{name}: {style}reward {b['score']:.2f} -> {a['score']:.2f}; KL to the SFT model {a['kl']:.1f} nats "
                f"({summary.get('iterations', '?')} iterations)")


def style_prompts(cfg: RLConfig, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) prompts: from `cfg.prompts` files, or the style set's prompts (a seed
    different from the SFT set's). Held-out prompts are never trained on."""
    if cfg.prompts:
        # a conversation prompt is reduced to its last (user) turn: RL prompts are single-turn
        prompts = [d["prompt"] if isinstance(d["prompt"], str) else d["prompt"][-1]["content"]
                   for d in read_prompts(cfg.prompts)]
    else:
        prompts = [p for p, _ in single_turn_examples(4 * (cfg.n_prompts + cfg.eval_prompts),
                                                       seed=seed_for("bundled_prompts", seed))]
    n_eval = min(cfg.eval_prompts, max(len(prompts) // 5, 1))
    return prompts[n_eval : n_eval + cfg.n_prompts], prompts[:n_eval]


def build_scorer(cfg: RLConfig, refs: list[RewardModelRef]):
    """The reward models (weighted), else the rules."""
    placement = {"dtype": cfg.compute.dtype, "device": compute_device(cfg.compute)}
    if refs:
        return load_scorer([(r.path, r.weight) for r in refs], **placement)
    return RuleScorer(cfg.rules)


def _stage(name: str) -> Stage:
    return Stage(name, lambda ctx: run_rl(ctx, name), lambda ctx: _run_key(ctx, name),
                 lambda cfg: getattr(cfg, name) is not None, section=name)


PPO, GRPO = _stage("ppo"), _stage("grpo")
