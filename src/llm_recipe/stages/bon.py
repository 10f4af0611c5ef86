"""Stage 5b: Best-of-N from the policy against the reward model(s).

    stage_bon(cfg, policy_dir, rm_dir, out)   out/best_of_n/report.json (+ samples.jsonl): mean reward
                                              of the returned answers vs. the N=1 answer, token
                                              cost, latency; skipped when done with the
                                              same settings, policy and reward model
    bon_prompts(bon_cfg, rm_cfg, seed)        configured prompts, else held-out style-set prompts
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import console, distributed
from ..config import BoNConfig, RecipeConfig, RMConfig
from ..config.rewards import source_name
from ..demo.style import STYLE_PREFIX, style_preference_pairs
from ..files import write_json, write_jsonl
from ..infer.best_of_n import best_of_n
from ..infer.reward import load_scorer
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..preference.records import split_by_prompt
from ..rewards.sources import build_rewards
from ..rewards.tasks import rl_prompt_split
from ..train.run_folder import model_key, run_key


def stage_bon(cfg: RecipeConfig, policy_dir: str | os.PathLike, rm_dir: str | os.PathLike | None,
              out: str | os.PathLike, skip_done: bool = True) -> Path:
    """Best-of-N with the policy and reward model(s) (`bon.reward_models`, else `rm_dir`); writes
    samples and a report with the mean reward of the returned answers vs. the N=1 answer, token
    cost and latency."""
    run_dir = Path(out) / "best_of_n"
    # the report of the same settings, policy and reward model is reused; other ones are measured again
    key = run_key(cfg.bon or BoNConfig(), seed=cfg.seed, base=policy_dir,
                  reward_model=model_key(rm_dir) if rm_dir is not None else None)
    report = run_dir / "report.json"
    if skip_done and report.exists() and json.loads(report.read_text(encoding="utf-8")).get("run_key") == key:
        return report
    return distributed.on_main(_best_of_n, cfg, policy_dir, rm_dir, run_dir, key)


def _best_of_n(cfg: RecipeConfig, policy_dir, rm_dir, run_dir: Path, key: dict) -> Path:
    bc, rc = cfg.bon or BoNConfig(), cfg.rm or RMConfig()
    compute = bc.compute
    refs = [(r.path, r.weight) for r in bc.reward_models] if bc.reward_models else [(str(rm_dir), 1.0)]
    if refs[0][0] in ("None", "") and not bc.rewards:
        raise ValueError("Best-of-N needs a reward model (bon.reward_models or the recipe's RM) or bon.rewards")
    policy, tok = load_model(policy_dir, compute), load_tokenizer(policy_dir)
    scorer = (build_rewards(bc.rewards, rm_dir, dtype=compute.dtype, device=policy.device) if bc.rewards
              else load_scorer(refs, dtype=compute.dtype, device=policy.device))
    prompts, columns = bon_prompts(bc, rc, cfg.seed), None
    if bc.task:  # a verifiable task: its held-out problems, with the columns its verifiers read
        split = rl_prompt_split(bc.task, None, 0, bc.n_prompts)
        prompts, columns = split.eval_prompts, [dict(zip(split.eval_columns, vals, strict=True))
                                                for vals in zip(*split.eval_columns.values(), strict=True)]
    if bc.rewards:  # the report names the sources
        refs = [(source_name(s), s.weight) for s in bc.rewards]
    with autocast(compute, policy.device):
        rep = best_of_n(policy, tok, prompts, scorer, bc.n, bc.sampling, seed=cfg.seed, chat_format=bc.chat_format,
                        columns=columns)
    summary = rep.summary()
    prefix = STYLE_PREFIX.strip()
    summary["style_rate_best"] = sum(it.best_text.lstrip().startswith(prefix) for it in rep.items) / len(rep.items)
    summary["style_rate_first_sample"] = (
        sum(it.samples[0].text.lstrip().startswith(prefix) for it in rep.items) / len(rep.items))
    write_jsonl(run_dir / "samples.jsonl", rep.to_records())
    write_json(run_dir / "report.json", {"policy": str(policy_dir), "reward_models": [str(p) for p, _ in refs],
                                         **summary, "run_key": key})
    console.log(f"best-of-{bc.n}: mean reward {summary['mean_first_sample_reward']:.3f} (N=1) -> "
                f"{summary['mean_best_reward']:.3f}; tokens x{summary['token_cost_ratio']:.2f}; "
                f"max-of-N latency {summary['max_of_n_latency_s']['mean']:.2f}s")
    return run_dir / "report.json"


def bon_prompts(bc: BoNConfig, rc: RMConfig, seed: int) -> list:
    """Configured prompts, else held-out prompts of the style set (never trained on by the RM)."""
    if bc.prompts:
        return list(bc.prompts)
    _, held = split_by_prompt(style_preference_pairs(rc.synthetic_pairs, seed), rc.eval_fraction, seed)
    return [p.prompt for p in held[: bc.n_prompts]]
