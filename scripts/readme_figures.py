"""The README's demo figures, regenerated from a run folder of the current commit.

    python scripts/readme_figures.py runs/demo                     print the blocks
    python scripts/readme_figures.py runs/demo --write README.md   replace them in README.md
    python scripts/readme_figures.py runs/demo --ppo-seeds 1 2 --write README.md
        also rerun the PPO stage from the run's SFT model and reward model with those seeds
        (runs/demo/ppo-seeds/seed-N) and give the spread: RL on a 3M-parameter model is noisy

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
    from llm_recipe.stages.rl import stage_ppo

    rows = []
    for s in seeds:
        cfg = load_config(run / "recipe.yaml", {"seed": s, "output_dir": str(run / "ppo-seeds" / f"seed-{s}")})
        res = stage_ppo(cfg, run / "sft" / "model", run / "reward_model" / "model", cfg.output_dir)
        rows.append({"seed": s, "before": res.before["success"], "after": res.after["success"], "kl": res.after["kl"]})
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
    ap.add_argument("run", type=Path)
    ap.add_argument("--write", type=Path, help="replace the blocks in this README")
    ap.add_argument("--ppo-seeds", type=int, nargs="*", default=[])
    a = ap.parse_args()
    spread = ppo_spread(a.run, a.ppo_seeds) if a.ppo_seeds else []
    write_or_print({"demo-headline": headline_block(a.run, spread), "demo-eval": eval_block(a.run)}, a.write)


if __name__ == "__main__":
    main()
