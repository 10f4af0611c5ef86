"""README's performance table, regenerated from the JSON results the benchmarks wrote.

    python scripts/perf_table.py                      print the blocks
    python scripts/perf_table.py --write README.md    replace them in README.md

Every figure is read from `benchmarks/results/*.json` (written by the benchmark scripts through
`benchmarks/harness.py`; each records its commit, machine, load, command and every run), so a slow
benchmark need not run again for the table to be rebuilt, and the table names the commit each row
was measured at. Blocks: `<!-- figures:perf -->` (ours vs the peer's defaults and best setting per
precision) and `<!-- figures:perf-profile -->` (where one SmolLM2 SFT step's time goes,
`benchmarks/profile_step.py --json`). Nothing outside the markers is touched.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "scripts"))
from readme_figures import write_or_print  # noqa: E402

ORDER = ["real_model_sft", "real_model_sft_bf16w", "real_model_dpo", "real_model_dpo_bf16w", "sft_throughput", "dpo_throughput", "rm_throughput",
         "pretrain_throughput", "grpo_throughput", "ppo_throughput"]
PREC = {"fp32": "fp32", "bf16-autocast": "bf16 autocast", "bf16-weights": "bf16 weights"}


def load_results(folder: Path = RESULTS) -> list[dict]:
    found = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}
    return [found[k] for k in ORDER if k in found] + [v for k, v in found.items() if k not in ORDER and "contenders" in v]


def _fig(r: dict) -> str:
    return f"{_num(r['median'])} [{_num(r['min'])}–{_num(r['max'])}]" if r["n"] > 1 else f"{_num(r['median'])} (1 run)"


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _setting(name: str) -> str:
    """A contender's name without its side and precision: the setting."""
    parts = [p for p in name.split() if p not in ("ours", "TRL", "HF", "Trainer", *PREC)
             and not p.replace(".", "").isdigit()]  # a peer's version ("TRL 1.12") is not a setting
    return " ".join(parts) or "default settings"


def _mfu(r: dict) -> str:
    return f"{r['mfu']:.0%}" if "mfu" in r else "—"


def rows_of(res: dict) -> list[str]:
    by_name = {r["name"]: r for r in res["contenders"]}
    short = f"`{res['commit'][:7]}`{' +local changes' if res.get('dirty') else ''}"
    load = f"load {res['load_start'][0]:.1f}–{res['load_end'][0]:.1f}"
    out = []
    for c in res["comparisons"]:
        o, b = by_name[c["ours"]], by_name[c["peer_best"]]
        d = by_name.get(c.get("peer_default", ""))
        out.append("| " + " | ".join([
            f"{res['title']} ({res['unit']}; {short}, {load})", PREC[c["precision"]],
            f"{_fig(o)} ({_setting(o['name'])})",
            f"{_fig(d)}" if d else "—",
            f"{_fig(b)} ({_setting(b['name'])})",
            f"{c['vs_default']:.2f}× / {c['vs_default_cpu']:.2f}×" if d else "—",
            f"**{c['vs_best']:.2f}×** / {c['vs_best_cpu']:.2f}×",
            f"{o['rss_gb']:.1f} / {b['rss_gb']:.1f}",
            f"{_mfu(o)} / {_mfu(b)}",
        ]) + " |")
    return out


def perf_block(results: list[dict]) -> str:
    if not results:
        return "No benchmark results in benchmarks/results/.\n"
    m = results[0]["machine"]
    commits = sorted({r["commit"][:7] for r in results})
    lines = [
        f"Measured on {m['cpu']} ({m['cores']} cores, {results[0]['threads']} torch threads"
        f"{', AVX512-BF16' if m.get('avx512_bf16') else ''}), torch {m['versions']['torch']}, TRL "
        f"{m['versions'].get('trl', '?')}, commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in commits)}; "
        "written by `python scripts/perf_table.py --write README.md` from `benchmarks/results/*.json`. Each figure: "
        "median [min–max] of the interleaved runs (each run its own process); ratios by wall time / by CPU time "
        "(user+sys); peak RSS of the process in GB; MFU = model FLOP/s over this machine's matmul roof at the model's "
        "shapes (`benchmarks/roof.py`). The peer's defaults are at the precision they ship with; \"best\" is the peer's "
        "fastest setting at that precision over its whole grid.",
        "",
        "| benchmark | precision | ours | peer defaults | peer best at this precision | ours ÷ defaults (wall / CPU) "
        "| ours ÷ best (wall / CPU) | peak RSS GB ours / best | MFU ours / best |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        lines += rows_of(res)
    measured: dict[str, set] = {}  # a benchmark's precisions over its result files (a later run may add one)
    for res in results:
        measured.setdefault(res["title"], set()).update(res.get("precisions", PREC))
    for res in results:  # a run of a subset of the grid (`--precisions`) says which precisions it left out
        if left := [PREC[p] for p in PREC if p not in measured[res["title"]]]:
            lines.append(f"\n{res['title']}: not measured at {', '.join(left)} (run with `--precisions "
                         f"{','.join(res['precisions'])}`).")
    for res in results:  # a quality check beside the speed (DPO: the held-out loss every run reached)
        by_name = {r["name"]: r for r in res["contenders"]}
        for c in res["comparisons"]:
            o, b = by_name[c["ours"]], by_name[c["peer_best"]]
            if "heldout_loss" in o.get("extras", {}) and "heldout_loss" in b.get("extras", {}):
                lines.append(f"\n{res['title']}, {PREC[c['precision']]}: held-out DPO loss after training (same pairs, "
                             f"order and reference) ours {o['extras']['heldout_loss']:.4f}, peer best "
                             f"{b['extras']['heldout_loss']:.4f}.")
    roofs = [(f"{r['title']} at `{r['commit'][:7]}`", r["roof"]) for r in results if r.get("roof")]
    if roofs:
        lines += ["", "Matmul roofs measured with each benchmark (GFLOP/s at the step's GEMM mix, fp32 / bf16): "
                  + "; ".join(f"{t}: {ro['fp32'] / 1e9:.0f} / {ro['bf16'] / 1e9:.0f}" for t, ro in roofs) + "."]
    return "\n".join(lines) + "\n"


def profile_block(folder: Path = RESULTS) -> str:
    files = sorted(folder.glob("profile_*.json"))
    if not files:
        return "No profile in benchmarks/results/ (benchmarks/profile_step.py --json).\n"
    lines = []
    for f in files:
        p = json.loads(f.read_text(encoding="utf-8"))
        total = sum(p["groups_ms"].values())
        parts = ", ".join(f"{g} {ms / total:.0%}" for g, ms in p["groups_ms"].items())
        mfu = f", MFU {p['mfu']:.0%} of the {p['roof'] / 1e9:.0f} GFLOP/s roof" if "mfu" in p else ""
        lines.append(f"- {Path(p['model']).name} SFT, {p['precision']}, batch {p['batch']} x {p['max_length']} "
                     f"(`{p.get('commit', '?')[:7]}`): {p['step_s']:.2f} s per step, {p['tokens_per_s']:.0f} tokens/s, "
                     f"{p['model_flops_per_s'] / 1e9:.0f} GFLOP/s{mfu}; self CPU time: {parts}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--write", type=Path, help="replace the blocks in this README")
    a = ap.parse_args()
    write_or_print({"perf": perf_block(load_results(a.results)), "perf-profile": profile_block(a.results)}, a.write)


if __name__ == "__main__":
    main()
