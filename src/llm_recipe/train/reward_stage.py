"""Recipe stages 5a and 5b: train the reward model, then Best-of-N against it.

    stage_rm(cfg, sft_model_dir, out)          -> out/reward_model/model   (RM directory)
    stage_bon(cfg, policy_dir, rm_dir, out)    -> out/best_of_n/report.json

Both skip work that is already complete (re-running a recipe continues; the RM resumes from its
checkpoint). Preference data: `rm.data` files (any shape `prefs convert` reads), else the
generated style set ("Let me explain. " + answer preferred), split by prompt hash.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import BoNConfig, GenerateConfig, RecipeConfig, RMConfig
from ..files import write_json, write_jsonl
from ..preference.converters import read_preference_files
from ..preference.records import PreferencePair, SkipLog, split_by_prompt
from ..preference.synthetic import STYLE_PREFIX, fluency_pairs, style_preference_pairs
from .interrupt import StoppedEarly


def _log(msg: str) -> None:
    print(f"[llm-recipe] {msg}", flush=True)


def rm_pairs(rc: RMConfig, seed: int) -> tuple[list[PreferencePair], list[PreferencePair], SkipLog | None, list]:
    """(train pairs, held-out pairs, read log, input files) for the reward model."""
    if rc.data:
        pairs, log = read_preference_files(rc.data)
        if rc.eval_data:
            held, held_log = read_preference_files(rc.eval_data)
            log.merge(held_log)
            return pairs, held, log, [*rc.data, *rc.eval_data]
        train, held = split_by_prompt(pairs, rc.eval_fraction, seed)
        return train, held, log, list(rc.data)
    pairs = style_preference_pairs(rc.synthetic_pairs, seed)
    if rc.fluency_pairs:
        pairs += fluency_pairs(rc.fluency_pairs, seed)
    train, held = split_by_prompt(pairs, rc.eval_fraction, seed)
    return train, held, None, []


def stage_rm(cfg: RecipeConfig, sft_model_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Train the reward model from `rm.init_from` or the SFT model; returns its directory."""
    from .reward_model import train_reward_model

    rc = cfg.rm or RMConfig()
    run_dir = Path(out) / "reward_model"
    if (run_dir / "model" / "model.safetensors").exists():
        return run_dir / "model"
    train, held, log, inputs = rm_pairs(rc, cfg.seed)
    if log is not None:
        _log(f"reward model data: {log.summary()}")
    res = train_reward_model(base=rc.init_from or str(sft_model_dir), train_pairs=train, eval_pairs=held, cfg=rc,
                             output_dir=run_dir, seed=cfg.seed, read_log=log, inputs=inputs, full_config=cfg)
    if res.stopped_early:
        raise StoppedEarly(f"reward model training stopped at step {res.steps} (checkpoint saved); "
                           "run the same command again to resume")
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    _log(f"reward model: held-out pairwise accuracy {pct(res.initial_eval_accuracy)} -> {pct(res.eval_accuracy)} "
         f"({len(held)} pairs, {res.steps} steps)")
    return res.model_dir


def bon_prompts(bc: BoNConfig, rc: RMConfig, seed: int) -> list:
    """Configured prompts, else held-out prompts of the style set (never trained on by the RM)."""
    if bc.prompts:
        return list(bc.prompts)
    _, held = split_by_prompt(style_preference_pairs(rc.synthetic_pairs, seed), rc.eval_fraction, seed)
    return [p.prompt for p in held[: bc.n_prompts]]


def stage_bon(cfg: RecipeConfig, policy_dir: str | os.PathLike, rm_dir: str | os.PathLike | None,
              out: str | os.PathLike, skip_done: bool = True) -> Path:
    """Best-of-N with the policy and reward model(s) (`bon.reward_models`, else `rm_dir`); writes
    samples and a report with the mean reward of the returned answers vs. the N=1 answer, token
    cost and latency."""
    from ..infer.best_of_n import best_of_n
    from ..infer.reward import load_scorer
    from ..models.loading import load_causal_lm, load_tokenizer

    bc, rc = cfg.bon or BoNConfig(), cfg.rm or RMConfig()
    run_dir = Path(out) / "best_of_n"
    if skip_done and (run_dir / "report.json").exists():
        return run_dir / "report.json"
    refs = [(r.path, r.weight) for r in bc.reward_models] if bc.reward_models else [(str(rm_dir), 1.0)]
    if refs[0][0] in ("None", ""):
        raise ValueError("Best-of-N needs a reward model (bon.reward_models or the recipe's RM)")
    scorer = load_scorer(refs)
    policy, tok = load_causal_lm(policy_dir), load_tokenizer(policy_dir)
    gen = GenerateConfig(max_new_tokens=bc.max_new_tokens, temperature=bc.temperature, top_k=bc.top_k,
                         top_p=bc.top_p, repetition_penalty=bc.repetition_penalty)
    prompts = bon_prompts(bc, rc, cfg.seed)
    rep = best_of_n(policy, tok, prompts, scorer, bc.n, gen, seed=cfg.seed, chat_format=bc.chat_format)
    summary = rep.summary()
    prefix = STYLE_PREFIX.strip()
    summary["style_rate_best"] = sum(it.best_text.lstrip().startswith(prefix) for it in rep.items) / len(rep.items)
    summary["style_rate_first_sample"] = (
        sum(it.samples[0].text.lstrip().startswith(prefix) for it in rep.items) / len(rep.items))
    write_jsonl(run_dir / "samples.jsonl", rep.to_records())
    write_json(run_dir / "report.json", {"policy": str(policy_dir), "reward_models": [str(p) for p, _ in refs],
                                         **summary})
    _log(f"best-of-{bc.n}: mean reward {summary['mean_first_sample_reward']:.3f} (N=1) -> "
         f"{summary['mean_best_reward']:.3f}; tokens x{summary['token_cost_ratio']:.2f}; "
         f"max-of-N latency {summary['max_of_n_latency_s']['mean']:.2f}s")
    return run_dir / "report.json"
