"""The README's demo figures, regenerated from a run folder of the current commit.

    python scripts/readme_figures.py runs/demo                     print the blocks
    python scripts/readme_figures.py runs/demo --write README.md   replace them in README.md
    python scripts/readme_figures.py runs/demo --ppo-seeds 1 2 --write README.md
        also rerun the PPO stage from the run's SFT model and reward model with those seeds
        (runs/demo/ppo-seeds/seed-N) and give the spread: RL on a 3M-parameter model is noisy
    python scripts/readme_figures.py runs/demo --hh runs/hh/seed-0 runs/hh/seed-1 --write README.md
        also the helpful-harmless block from the HH runs (`benchmarks/hh_recipe.py`), one row per
        seed and model, with the 95% intervals and the spread over seeds
    python scripts/readme_figures.py --rlvr runs/rlvr-seed0 runs/rlvr-seed1 --write README.md
        only the block of the SmolLM2 RLVR recipe (`recipes/smollm2_rlvr.yaml`), one row per
        training seed, from each run's eval/report.json, summary.json and metrics

Every figure is read from the run's own files (summary.json, eval/report.json, run.json), so the
README says what this commit's demo produced, with the commit and the command that made it. In
README.md each generated block sits between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->`;
nothing outside the markers is touched, and a second --write with the same run changes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

from llm_recipe.report.eval_table import markdown_table


def _read(p: Path) -> dict:
    return json.loads(p.read_text(encoding="utf-8"))


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _commit(run: Path) -> str:
    for rel in ("eval/run.json", "sft/run.json", "pretrain/run.json"):
        if (run / rel).is_file():
            return (_read(run / rel).get("git_commit") or "unknown")[:7]
    return "unknown"


def ppo_spread(run: Path, seeds: list[int]) -> list[dict]:
    """The demo's PPO stage again with other seeds, from the same SFT model and reward model."""
    from llm_recipe.config import load_config
    from llm_recipe.stages import rl
    from llm_recipe.stages.context import RunContext
    from llm_recipe.stages.contract import run_stage

    rows = []
    for s in seeds:
        cfg = load_config(run / "recipe.yaml", {"seed": s, "output_dir": str(run / "ppo-seeds" / f"seed-{s}")})
        ctx = RunContext(cfg, artifacts={"sft_model": str(run / "sft" / "model"),
                                         "reward_model": str(run / "reward_model" / "model")})
        sm = _read(Path(run_stage(ctx, rl.PPO)["ppo_model"]).parent / "summary.json")
        rows.append({"seed": s, "before": sm["before"]["success"], "after": sm["after"]["success"],
                     "kl": sm["after"]["kl"]})
    return rows


def headline_block(run: Path, spread: list[dict]) -> str:
    r = _read(run / "summary.json")["results"]
    recipe_seed = (yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8")) or {}).get("seed", 0)
    p, s, rm, b, d, ppo = (r.get(k, {}) for k in ("pretrain", "sft", "rm", "bon", "dpo", "ppo"))
    lines = [f"Last run (`bash scripts/demo.sh`, commit `{_commit(run)}`; figures written by "
             f"`python scripts/readme_figures.py runs/demo --write README.md`):"]
    if p:
        lines.append(f"pretraining eval loss {p['eval_loss_first']:.2f} → {p['eval_loss_last']:.2f};")
    if s:
        fact = (f", stating the expected fact {_pct(s['states_fact_before'])} → {_pct(s['states_fact_after'])}"
                if s.get("states_fact_after") is not None else "")
        lines.append(f"SFT format following on {s['held_out_prompts']} held-out prompts "
                     f"{_pct(s['format_following_before'])} → {_pct(s['format_following_after'])}{fact};")
    if rm:
        lines.append(f"reward model held-out pairwise accuracy {rm['eval_accuracy_before']:.2f} → {rm['eval_accuracy']:.2f};")
    if b:
        lines.append(f"Best-of-{b['n']} mean reward {b['mean_reward_n1']:.2f} → {b['mean_reward_best']:.2f} "
                     f"({b['token_cost_ratio']:.1f}× the tokens);")
    if d:
        lines.append(f"DPO: answers starting with \"{d['prefix']}\" {_pct(d['success_sft'])} → {_pct(d['success_dpo'])} "
                     f"(ROUGE-L {d['content_overlap']:.2f} against the SFT answer);")
    if ppo:
        lines.append(f"PPO (seed {recipe_seed}): {_pct(ppo['success_before'])} → {_pct(ppo['success_after'])} with KL "
                     f"{ppo['kl_to_reference']:.1f} nats to the SFT model.")
    if spread:
        after = [x["after"] for x in spread] + ([ppo["success_after"]] if ppo else [])
        kls = [x["kl"] for x in spread] + ([ppo["kl_to_reference"]] if ppo else [])
        lines.append(f"PPO over {len(after)} seeds ({', '.join(str(x['seed']) for x in spread)} and the recipe's): "
                     f"success after {_pct(min(after))}–{_pct(max(after))}, KL {min(kls):.1f}–{max(kls):.1f} nats "
                     f"(`--ppo-seeds {' '.join(str(x['seed']) for x in spread)}`; RL on a 3M model is noisy).")
    return "\n".join(lines) + "\n"


def eval_block(run: Path) -> str:
    return (f"`runs/demo/eval/table.md` (commit `{_commit(run)}`):\n\n"
            + markdown_table(_read(run / "eval" / "report.json")))


def _benchmark(script: str):
    """A module of benchmarks/ (the scripts whose `figures_text` writes a block)."""
    import importlib
    import sys

    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(script)


def hh_block(runs: list[Path]) -> str:
    """The HH recipe over seeds, in the words `benchmarks/hh_recipe.py` prints it."""
    return _benchmark("hh_recipe").figures_text(runs)


# README block -> the benchmark script whose results JSON it is written from (its `figures_text`)
BENCHMARK_BLOCKS = {"cpt-ja": "cpt_ja", "pretrain-data": "pretrain_data", "rlvr-throughput": "rlvr_throughput",
                    "serve-throughput": "serve_throughput", "judge-demo": "judge_demo",
                    "small-data-defaults": "small_data_defaults", "web-curation": "web_curation"}


def benchmark_block(block: str, results: Path) -> str:
    """A benchmark's figures from its results JSON, in the words the benchmark prints them."""
    script = BENCHMARK_BLOCKS[block]
    text = _benchmark(script).figures_text(_read(results))
    return (f"Last run (`python benchmarks/{script}.py`, results `{results}`; block written by "
            f"`python scripts/readme_figures.py --{block} {results} --write README.md`):\n" + text)


def _rl_section(run: Path) -> str:
    arts = _read(run / "summary.json")["artifacts"]
    return next(k.removesuffix("_model") for k in ("grpo_model", "rloo_model", "reinforce_pp_model", "ppo_model")
                if k in arts)


def rlvr_block(runs: list[Path]) -> str:
    """One row per run (training seed) of the RLVR recipe: held-out verifier accuracy before (the
    released model) and after RL with the paired 95% interval, pass@1 / pass@k, the share of
    answers in the prompt's language, and the RL stage's wall time."""
    lines = ["| seed | task (held-out problems) | accuracy before → after | Δ [95% CI] | pass@1 before → after | "
             "pass@k before → after | answer in prompt's language | format | RL stage |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        rep = _read(run / "eval" / "report.json")
        algo = _rl_section(run)
        b, a = rep["models"]["base"]["task"], rep["models"][algo]["task"]
        seed = (yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8")) or {}).get("seed", 0)
        k = a.get("samples")
        d = a["vs_reference"]
        pk = (f"{_pct(b['pass@1'])} → {_pct(a['pass@1'])} | {_pct(b[f'pass@{k}'])} → {_pct(a[f'pass@{k}'])} (k={k})"
              if k else "— | —")
        secs = _read(run / "summary.json")["seconds"].get(algo)
        lines.append(f"| {seed} | {a['task']['name']} ({a['n']}) | {_pct(b['accuracy'])} → {_pct(a['accuracy'])} | "
                     f"{100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] pts | {pk} | "
                     f"{_pct(b['answer_in_prompt_language'])} → {_pct(a['answer_in_prompt_language'])} | "
                     f"{_pct(b['answer_format'])} → {_pct(a['answer_format'])} | "
                     f"{algo} {secs / 60:.1f} min |")
    commits = [_commit(r) for r in runs]
    where = (f"commit `{commits[0]}`" if len(set(commits)) == 1 else
             "commits " + ", ".join(f"`{c}` ({r.name})" for c, r in zip(commits, runs, strict=True)))
    head = (f"Runs of `recipes/smollm2_rlvr.yaml` ({where}; written by "
            f"`python scripts/readme_figures.py --rlvr {' '.join(str(r) for r in runs)} --write README.md`; "
            "greedy answers, intervals paired over the same problems):\n\n")
    return head + "\n".join(lines) + "\n"


def replace_blocks(text: str, blocks: dict[str, str]) -> str:
    for name, body in blocks.items():
        pat = re.compile(rf"(<!-- figures:{name} -->\n).*?(<!-- /figures:{name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"README has no <!-- figures:{name} --> ... <!-- /figures:{name} --> block")
        text = pat.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def write_or_print(blocks: dict[str, str], readme: Path | None) -> None:
    """Replace the blocks in `readme`, or print them with their markers."""
    if readme:
        readme.write_text(replace_blocks(readme.read_text(encoding="utf-8"), blocks), encoding="utf-8")
    else:
        for name, body in blocks.items():
            print(f"<!-- figures:{name} -->\n{body}<!-- /figures:{name} -->")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, nargs="?", help="the demo run (its blocks: demo-headline, demo-eval)")
    ap.add_argument("--write", type=Path, help="replace the blocks in this README")
    ap.add_argument("--ppo-seeds", type=int, nargs="*", default=[])
    ap.add_argument("--hh", type=Path, nargs="*", default=[], help="HH run folders (one per seed)")
    ap.add_argument("--rlvr", type=Path, nargs="*", default=[], help="runs of recipes/smollm2_rlvr.yaml (seeds)")
    for block, script in BENCHMARK_BLOCKS.items():
        ap.add_argument(f"--{block}", type=Path, help=f"the results JSON of benchmarks/{script}.py (its block)")
    a = ap.parse_args()
    blocks = {}
    if a.run:
        spread = ppo_spread(a.run, a.ppo_seeds) if a.ppo_seeds else []
        blocks = {"demo-headline": headline_block(a.run, spread), "demo-eval": eval_block(a.run)}
    if a.hh:
        blocks["hh-eval"] = hh_block(a.hh)
    if a.rlvr:
        blocks["rlvr"] = rlvr_block(a.rlvr)
    for block in BENCHMARK_BLOCKS:
        if results := getattr(a, block.replace("-", "_")):
            blocks[block] = benchmark_block(block, results)
    write_or_print(blocks, a.write)


if __name__ == "__main__":
    main()
