"""Stage 5b: Best-of-N from the policy against the reward model(s).

    STAGE                                     <run>/best_of_n/report.json (+ samples.jsonl): mean
                                              reward of the returned answers vs. the N=1 answer,
                                              token cost, latency
    bon_prompts(bon_cfg, rm_cfg, seed)        configured prompts, else held-out style-set prompts
"""

from __future__ import annotations

from pathlib import Path

from .. import console, distributed
from ..config import BoNConfig, RecipeConfig, RMConfig
from ..demo.style import STYLE_PREFIX, style_preference_pairs
from ..files import write_json, write_jsonl
from ..infer.best_of_n import best_of_n
from ..infer.reward import load_scorer
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..preference.records import split_by_prompt
from .context import Artifacts, RunContext
from .contract import Stage, stage_key


def _refs(ctx: RunContext) -> list[tuple[str, float]]:
    refs = [(r.path, r.weight) for r in ctx.reward_model_refs(ctx.cfg.bon)]
    if not refs:
        raise ValueError("Best-of-N needs a reward model (--rm, bon.reward_models or the recipe's rm: stage)")
    return refs


def key(ctx: RunContext) -> dict:
    bc = ctx.cfg.bon or BoNConfig()
    models = {"policy": ctx.start_model("bon", bc), **{f"rm{i}": p for i, (p, _) in enumerate(_refs(ctx))}}
    return stage_key(ctx, {"bon": bc.model_dump(mode="json"), "weights": [w for _, w in _refs(ctx)],
                           "rm": (ctx.cfg.rm or RMConfig()).model_dump(mode="json") if not bc.prompts else None},
                     models=models)


def run(ctx: RunContext) -> Artifacts:
    """Best-of-N with the policy and reward model(s) (`RunContext.reward_model_refs`); writes
    samples and a report with the mean reward of the returned answers vs. the N=1 answer, token
    cost and latency into <run>/best_of_n."""
    run_dir = ctx.out / "best_of_n"
    return {"best_of_n_report": str(distributed.on_main(_best_of_n, ctx.cfg, ctx.start_model("bon", ctx.cfg.bon),
                                                        _refs(ctx), run_dir))}


def _best_of_n(cfg: RecipeConfig, policy_dir, refs: list[tuple[str, float]], run_dir: Path) -> Path:
    bc, rc = cfg.bon or BoNConfig(), cfg.rm or RMConfig()
    compute = bc.compute
    policy, tok = load_model(policy_dir, compute), load_tokenizer(policy_dir)
    scorer = load_scorer(refs, dtype=compute.dtype, device=policy.device)
    prompts = bon_prompts(bc, rc, cfg.seed)
    with autocast(compute, policy.device):
        rep = best_of_n(policy, tok, prompts, scorer, bc.n, bc.sampling, seed=cfg.seed, chat_format=bc.chat_format)
    summary = rep.summary()
    prefix = STYLE_PREFIX.strip()
    summary["style_rate_best"] = sum(it.best_text.lstrip().startswith(prefix) for it in rep.items) / len(rep.items)
    summary["style_rate_first_sample"] = (
        sum(it.samples[0].text.lstrip().startswith(prefix) for it in rep.items) / len(rep.items))
    write_jsonl(run_dir / "samples.jsonl", rep.to_records())
    write_json(run_dir / "report.json", {"policy": str(policy_dir), "reward_models": [str(p) for p, _ in refs],
                                         **summary})
    console.log(f"best-of-{bc.n}: mean reward {summary['mean_first_sample_reward']:.3f} (N=1) -> "
                f"{summary['mean_best_reward']:.3f}; tokens x{summary['token_cost_ratio']:.2f}; "
                f"max-of-N latency {summary['max_of_n_latency_s']['mean']:.2f}s")
    return run_dir / "report.json"


STAGE = Stage("bon", run, key, lambda cfg: cfg.bon is not None)


def bon_prompts(bc: BoNConfig, rc: RMConfig, seed: int) -> list:
    """Configured prompts, else held-out prompts of the style set (never trained on by the RM)."""
    if bc.prompts:
        return list(bc.prompts)
    _, held = split_by_prompt(style_preference_pairs(rc.synthetic_pairs, seed), rc.eval_fraction, seed)
    return [p.prompt for p in held[: bc.n_prompts]]
