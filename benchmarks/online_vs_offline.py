"""What online (on-policy, iterative) DPO buys over offline DPO at the same number of labelled pairs.

From one run's SFT model and reward model (default: the demo run, `bash scripts/demo.sh`):

    online    R rounds: sample k answers to P fresh prompts from the current policy, label by the
              RM (best vs worst), DPO for S steps (reference: the SFT model)
    offline   1 round: R x P prompts sampled once from the SFT model, labelled the same way, DPO for
              R x S steps: the same labelled pairs, prompts, steps and reference

Both are measured by the evaluation stage on the run's held-out SFT prompts (greedy answers):
mean reward and RM win rate against the SFT model, KL; then head to head, online vs offline: the
RM win rate and the paired mean reward difference, each with a 95% bootstrap interval over
prompts. Repeated for several seeds (`online_dpo.seed`: prompt order, sampling and DPO; the same
SFT model, RM, SFT split and so the same held-out prompts for every seed),
because a 3M-parameter policy is noisy: the spread is printed, not the best seed.

    python benchmarks/online_vs_offline.py [--run runs/demo] [--seeds 0 1 2] [--out /tmp/online_vs_offline]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from llm_recipe.config import load_config
from llm_recipe.eval.winrate import outcomes_from_scores, win_rate_report
from llm_recipe.files import write_json
from llm_recipe.infer.reward import load_scorer
from llm_recipe.stages import eval as eval_stage
from llm_recipe.stages import online_dpo
from llm_recipe.stages.context import RunContext
from llm_recipe.stages.contract import run_stage


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of a - b over prompts with a percentile bootstrap 95% interval."""
    d = a - b
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    return {"mean": float(d.mean()), "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]}


def held_out_answers(eval_dir: Path, model: str) -> tuple[list[str], list[str]]:
    recs = [json.loads(line) for line in (eval_dir / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in recs if r["model"] == model and r["set"] == "held_out"]
    return [r["prompt"] for r in rows], [r["answer"] for r in rows]


def one_seed(run: Path, out: Path, seed: int, rounds: int, per_round: int, steps: int) -> dict:
    sft, rm = run / "sft" / "model", run / "reward_model" / "model"
    common = {"candidates": {"k": 4, "temperatures": [1.0], "sampling": {"max_new_tokens": 32}}, "batch_size": 16}
    online = {**common, "rounds": rounds, "prompts_per_round": per_round, "max_steps": steps}
    offline = {**common, "rounds": 1, "prompts_per_round": rounds * per_round, "max_steps": rounds * steps}
    models = {}
    for name, section in (("online", online), ("offline", offline)):
        cfg = load_config(run / "recipe.yaml", {"output_dir": str(out / name), "online_dpo": {**section, "seed": seed}})
        ctx = RunContext(cfg, artifacts={"sft_model": str(sft), "reward_model": str(rm)})
        models[name] = run_stage(ctx, online_dpo.STAGE)["online_dpo_model"]
    ecfg = load_config(run / "recipe.yaml", {"output_dir": str(out), "eval.judge_model": None})
    ctx = RunContext(ecfg, artifacts={"sft_model": str(sft), "reward_model": str(rm), "dpo_model": models["offline"],
                                      "online_dpo_model": models["online"]})
    report = json.loads(Path(run_stage(ctx, eval_stage.STAGE)["eval_report"]).read_text())
    rows = report["models"]
    prompts, on = held_out_answers(out / "eval", "online_dpo")
    _, off = held_out_answers(out / "eval", "dpo")
    scorer = load_scorer([(str(rm), 1.0)])
    s_on, s_off = (np.asarray(scorer.score(prompts, a), dtype=np.float64) for a in (on, off))
    head = win_rate_report(outcomes_from_scores(s_on, s_off), [len(t) for t in on], [len(t) for t in off],
                           2000, seed)
    per_round = json.loads((out / "online" / "online_dpo" / "report.json").read_text())["rounds"]
    return {
        "seed": seed,
        "sft_mean_reward": rows["sft"]["mean_reward"],
        **{f"{k}_{n}": rows[m][f] if k != "win_rate_vs_sft" else rows[m]["win_rate_rm"]["win_rate"]
           for n, m in (("online", "online_dpo"), ("offline", "dpo"))
           for k, f in (("mean_reward", "mean_reward"), ("win_rate_vs_sft", None))},
        "kl_online": rows["online_dpo"]["kl"]["kl"], "kl_offline": rows["dpo"]["kl"]["kl"],
        "online_vs_offline_win_rate": head["win_rate"], "online_vs_offline_ci95": head["ci95"],
        "reward_difference": paired_difference(s_on, s_off, seed=seed),
        "online_round_sample_scores": [r["mean_score"] for r in per_round],
        "prompts": len(prompts),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/demo"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompts-per-round", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="DPO steps per round (offline: rounds x steps)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/online_vs_offline"))
    a = ap.parse_args()
    results = [one_seed(a.run, a.out / f"seed-{s}", s, a.rounds, a.prompts_per_round, a.steps) for s in a.seeds]
    write_json(a.out / "results.json", results)
    print(f"\n{a.rounds} rounds x {a.prompts_per_round} prompts x {a.steps} steps (online) vs 1 x "
          f"{a.rounds * a.prompts_per_round} x {a.rounds * a.steps} (offline); RM-labelled best vs worst of 4\n")
    print("| seed | SFT reward | offline reward | online reward | online - offline [95% CI] | online vs offline win "
          "rate [95% CI] | KL offline / online | online: mean score of its samples by round |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        d = r["reward_difference"]
        print(f"| {r['seed']} | {r['sft_mean_reward']:.3f} | {r['mean_reward_offline']:.3f} | "
              f"{r['mean_reward_online']:.3f} | {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | "
              f"{r['online_vs_offline_win_rate']:.0%} [{r['online_vs_offline_ci95'][0]:.0%}, "
              f"{r['online_vs_offline_ci95'][1]:.0%}] | {r['kl_offline']:.1f} / {r['kl_online']:.1f} | "
              f"{' -> '.join(f'{x:.2f}' for x in r['online_round_sample_scores'])} |")
    diffs = np.array([r["reward_difference"]["mean"] for r in results])
    wins = np.array([r["online_vs_offline_win_rate"] for r in results])
    print(f"\nover {len(results)} seeds: reward difference mean {diffs.mean():+.3f} (min {diffs.min():+.3f}, max "
          f"{diffs.max():+.3f}); online-vs-offline win rate mean {wins.mean():.0%} (min {wins.min():.0%}, max "
          f"{wins.max():.0%})")


if __name__ == "__main__":
    main()
