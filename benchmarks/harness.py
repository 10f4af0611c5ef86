"""The measurement every peer benchmark shares: a grid of contenders, each run in its own process,
interleaved over repeats, with wall and CPU time, peak RSS, the machine's load, MFU against the
measured matmul roof, and a JSON record of it all (commit included) that `scripts/perf_table.py`
turns into README's table.

A benchmark script declares its contenders (ours and the peer's, each with a precision:
fp32 | bf16-autocast | bf16-weights, and its settings) and a worker function; `main()` does the rest:

    round 1    every contender once, in grid order
    prune      keep every one of ours, the peer's defaults, and the peer's best `--keep` settings of
               each precision by round 1 (the rest is reported with its single run, marked pruned)
    rounds 2.. the kept contenders again, `--repeats` runs each in all, the order rotated every
               round (ABAB...: no contender always runs first or after the same one)

Each run is a fresh process (`python SCRIPT --worker JSON`): nothing is shared or warmed up between
contenders, and the parent reads the child's own peak RSS (ru_maxrss) and CPU time (user + sys, all
threads) from `os.wait4`. Inside the child the worker marks the timed window (`Clock.mark`): after
its warm-up steps to the end; the throughput is units (tokens, pairs...) over the window's wall time,
and the window's CPU time is reported beside it. Figures per contender: median and min-max over its
runs. The load average is recorded at the start and end and before every run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RESULT = "HARNESS-RESULT "
PRECISIONS = ("fp32", "bf16-autocast", "bf16-weights")
ROOF_OF = {"fp32": "fp32", "bf16-autocast": "bf16", "bf16-weights": "bf16"}


@dataclass
class Contender:
    name: str
    side: str  # "ours" | "peer"
    precision: str  # one of PRECISIONS
    settings: dict = field(default_factory=dict)
    default: bool = False  # the peer's defaults (as shipped)
    python: str | None = None  # the interpreter of its process (a peer in its own venv); None: this one


class Clock:
    """The worker's timed window: `mark("start", units)` and `mark("end", units)`."""

    def __init__(self):
        self.marks: dict[str, tuple[float, float, float]] = {}

    def mark(self, key: str, units: float) -> None:
        self.marks[key] = (time.perf_counter(), time.process_time(), float(units))

    def window(self) -> dict:
        """The timed window; with a `begin` mark (before the first step) also the warm-up's wall time."""
        (w0, c0, u0), (w1, c1, u1) = self.marks["start"], self.marks["end"]
        out = {"units": u1 - u0, "wall_s": w1 - w0, "cpu_s": c1 - c0}
        if "begin" in self.marks:
            out["warmup_s"] = w0 - self.marks["begin"][0]
        return out


def grid(peer: str, options: dict[str, Sequence], default: dict, label: Callable[[str, dict], str] | None = None,
         python: str | None = None) -> list[Contender]:
    """Ours at every precision, then the peer at every precision x every combination of `options`
    (`{setting: values}`); `default` names the peer's defaults (`precision` and settings). `label`
    names a setting combination (default: `key=value` pairs); `python`: the peer's interpreter."""
    from itertools import product

    label = label or (lambda prec, kw: " ".join(f"{k}={v}" for k, v in kw.items()))
    out = [Contender(f"ours {p}", "ours", p) for p in PRECISIONS]
    for prec, values in product(PRECISIONS, product(*options.values())):
        kw = dict(zip(options, values, strict=True))
        out.append(Contender(f"{peer} {prec} {label(prec, kw)}".strip(), "peer", prec, kw,
                             default={"precision": prec, **kw} == default, python=python))
    return out


def gc(on: bool) -> str:
    return f"gc={'on' if on else 'off'}"


# ---- the child ----------------------------------------------------------------------------------
def run_worker(spec: str, args: argparse.Namespace, work: Callable[[Contender, argparse.Namespace, Clock], dict | None]):
    """In the child: run one contender, print its window (and the worker's extras) as one line. Torch
    takes its threads from OMP_NUM_THREADS, which `spawn` sets."""
    c = Contender(**json.loads(spec))
    clock = Clock()
    extra = work(c, args, clock) or {}
    print(RESULT + json.dumps({**clock.window(), **extra}), flush=True)


# ---- the parent ---------------------------------------------------------------------------------
def spawn(script: Path, c: Contender, argv: Sequence[str], threads: int, log_dir: Path) -> dict:
    """One contender in a fresh process: its window, peak RSS and whole-process CPU time."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    log = log_dir / f"{c.name.replace(' ', '_').replace('/', '-')}.{time.time_ns()}.log"
    load = os.getloadavg()[0]
    with open(log, "w") as out:
        p = subprocess.Popen([c.python or sys.executable, str(script), "--worker", json.dumps(asdict(c)), *argv], env=env,
                             stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, ru = os.wait4(p.pid, 0)
    text = log.read_text(errors="replace")
    line = next((ln[len(RESULT):] for ln in text.splitlines() if ln.startswith(RESULT)), None)
    if os.waitstatus_to_exitcode(status) != 0 or line is None:
        raise SystemExit(f"{c.name} failed (log {log}):\n{text[-3000:]}")
    res = json.loads(line)
    res.update(rss_gb=ru.ru_maxrss / 2**20, process_cpu_s=ru.ru_utime + ru.ru_stime, load_before=round(load, 2))
    res["value"] = res["units"] / res["wall_s"]
    return res


def _best(contenders: list[Contender], first: dict[str, dict], n: int) -> list[Contender]:
    """The peer's `n` fastest settings of each precision in round 1."""
    out = []
    for prec in PRECISIONS:
        peers = [c for c in contenders if c.side == "peer" and c.precision == prec]
        out += sorted(peers, key=lambda c: -first[c.name]["value"])[:n]
    return out


def _keep(contenders: list[Contender], first: dict[str, dict], keep: int) -> list[Contender]:
    kept = {c.name for c in contenders if c.side == "ours" or c.default} | {c.name for c in _best(contenders, first, keep)}
    return [c for c in contenders if c.name in kept]


def run_grid(script: Path, contenders: list[Contender], argv: Sequence[str], threads: int, repeats: int,
             keep: int, say=print, derive: Callable[[list[Contender]], list[Contender]] | None = None
             ) -> dict[str, list[dict]]:
    """Round 1 over all, then the kept ones interleaved until each has `repeats` runs. `derive`: from
    the peer's best setting of each precision in round 1, more contenders (run once, then kept)."""
    runs: dict[str, list[dict]] = {c.name: [] for c in contenders}
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs:
        for i, c in enumerate(contenders):
            runs[c.name].append(spawn(script, c, argv, threads, Path(logs)))
            say(f"  round 1 [{i + 1}/{len(contenders)}] {c.name:<44} {_brief(runs[c.name][-1])}")
        first = {k: v[0] for k, v in runs.items()}
        kept = _keep(contenders, first, keep)
        pruned = [c.name for c in contenders if c not in kept]
        if pruned and repeats > 1:
            say(f"  pruned after round 1 (not ours, not the defaults, not the peer's best {keep} of its "
                f"precision): {', '.join(pruned)}")
        if derive:
            for c in derive(_best(contenders, first, 1)):
                runs[c.name] = [spawn(script, c, argv, threads, Path(logs))]
                contenders.append(c)
                kept.append(c)
                say(f"  round 1 (derived) {c.name:<44} {_brief(runs[c.name][-1])}")
        for r in range(1, repeats):
            order = kept[r % len(kept):] + kept[: r % len(kept)]
            for c in order:
                runs[c.name].append(spawn(script, c, argv, threads, Path(logs)))
                say(f"  round {r + 1} {c.name:<44} {_brief(runs[c.name][-1])}")
    return runs


def _brief(r: dict) -> str:
    return (f"{r['value']:9.2f}/s  wall {r['wall_s']:6.1f}s  cpu {r['cpu_s']:6.1f}s  rss {r['rss_gb']:.2f} GB  "
            f"load {r['load_before']:.1f}")


def summarize(c: Contender, runs: list[dict], repeats: int, flops_per_unit: float | None, roof: dict | None) -> dict:
    vals = [r["value"] for r in runs]
    cpu_rate = [r["units"] / r["cpu_s"] for r in runs]
    med = statistics.median(vals)
    out = {**asdict(c), "runs": runs, "n": len(runs), "pruned": len(runs) < repeats, "median": med,
           "min": min(vals), "max": max(vals),
           "cpu_median": statistics.median(cpu_rate), "rss_gb": max(r["rss_gb"] for r in runs)}
    standard = {"units", "wall_s", "cpu_s", "warmup_s", "rss_gb", "process_cpu_s", "load_before", "value"}
    extras = {k for k, v in runs[0].items() if k not in standard and isinstance(v, (int, float))}
    out["extras"] = {k: statistics.median(r[k] for r in runs) for k in sorted(extras)}  # e.g. held-out loss
    if flops_per_unit and roof:
        peak = roof[ROOF_OF[c.precision]]
        out["mfu"] = med * flops_per_unit / peak
        out["model_flops_per_s"] = med * flops_per_unit
    return out


# ---- machine, commit, roof ------------------------------------------------------------------------
def machine() -> dict:
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    mem = next((int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")), 0)
    versions = {"torch": torch.__version__, "python": platform.python_version()}
    for mod in ("transformers", "trl", "accelerate", "peft"):
        with contextlib.suppress(ImportError):
            versions[mod] = __import__(mod).__version__
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gb": round(mem / 2**20, 1),
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags, "versions": versions}


def commit() -> dict:
    """The checkout's commit and whether src/ or benchmarks/ differ from it; a copy without .git
    (`git archive` of a commit, so that edits during a long run cannot leak into it) names its
    commit in BENCH_COMMIT."""
    def git(*a):
        return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()

    if not (ROOT / ".git").exists() and os.environ.get("BENCH_COMMIT"):
        return {"commit": os.environ["BENCH_COMMIT"], "dirty": False}
    # the results folder is what the benchmarks write, not code: a result written earlier makes nothing dirty
    return {"commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "src", "benchmarks", ":(exclude)benchmarks/results"))}


def measure_roof(shapes: dict, tokens: int, loss_tokens: int, threads: int) -> dict:
    """`roof.py` in a fresh process (the same threads as training), at `shapes` (`roof.Shapes`)."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "roof.json"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "roof.py"), "--shapes", json.dumps(shapes),
                        "--tokens", str(tokens),
                        "--loss-tokens", str(loss_tokens), "--threads", str(threads), "--json", str(out)],
                       check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "src")},
                       stdout=subprocess.DEVNULL)
        r = json.loads(out.read_text())
    return {k: r[k] for k in ("fp32", "bf16", "tokens", "loss_tokens", "threads")}


# ---- the comparison table -------------------------------------------------------------------------
def comparisons(rows: list[dict]) -> list[dict]:
    """Per precision with one of ours: ours (its best setting) against the peer's best setting at
    that precision and, where that is their precision, the peer's defaults."""
    out = []
    default = next((r for r in rows if r["default"]), None)
    for prec in PRECISIONS:
        ours = [r for r in rows if r["side"] == "ours" and r["precision"] == prec]
        peers = [r for r in rows if r["side"] == "peer" and r["precision"] == prec and not r["pruned"]]
        if not ours or not peers:
            continue
        o, b = max(ours, key=lambda r: r["median"]), max(peers, key=lambda r: r["median"])
        row = {"precision": prec, "ours": o["name"], "peer_best": b["name"], "vs_best": o["median"] / b["median"],
               "vs_best_cpu": o["cpu_median"] / b["cpu_median"]}
        if default and default["precision"] == prec:
            row.update(peer_default=default["name"], vs_default=o["median"] / default["median"],
                       vs_default_cpu=o["cpu_median"] / default["cpu_median"])
        out.append(row)
    return out


def render(result: dict) -> list[str]:
    """The benchmark's lines: every contender, then the comparisons."""
    unit = result["unit"]
    lines = [f"{result['title']} — {unit}, median [min–max] of the runs; CPU: {unit.split('/')[0]} per CPU-second "
             f"(user+sys, all threads); peak RSS; MFU = model FLOP/s ÷ measured {{fp32|bf16}} matmul roof"]
    lines.append(f"{'contender':<46}{'prec':<14}{'n':>2} {'median':>9} {'[min–max]':>18} {'CPU':>8} {'RSS GB':>7} {'MFU':>6}")
    for r in sorted(result["contenders"], key=lambda r: (PRECISIONS.index(r["precision"]), r["side"] != "ours",
                                                         -r["median"])):
        mfu = f"{r['mfu']:.0%}" if "mfu" in r else "—"
        tag = " (defaults)" if r["default"] else " (pruned)" if r["pruned"] else ""
        spread = f"[{r['min']:.2f}–{r['max']:.2f}]"
        extra = "  " + " ".join(f"{k} {v:.4g}" for k, v in r.get("extras", {}).items())
        lines.append(f"{r['name'] + tag:<46}{r['precision']:<14}{r['n']:>2} {r['median']:9.2f} {spread:>18} "
                     f"{r['cpu_median']:8.2f} {r['rss_gb']:7.2f} {mfu:>6}{extra.rstrip()}")
    for c in result["comparisons"]:
        s = (f"{c['precision']}: {c['ours']} / peer best ({c['peer_best']}) = {c['vs_best']:.2f}x wall, "
             f"{c['vs_best_cpu']:.2f}x CPU")
        if "vs_default" in c:
            s += f"; / peer defaults = {c['vs_default']:.2f}x wall, {c['vs_default_cpu']:.2f}x CPU"
        lines.append(s)
    return lines


def _without(argv: Sequence[str], flag: str) -> list[str]:
    """`argv` without `flag VALUE` / `flag=VALUE` (the children get everything else)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == flag:
            skip = True
        elif not a.startswith(flag + "="):
            out.append(a)
    return out


def main_with_fixture(args: argparse.Namespace, argv: Sequence[str], build_fixture: Callable, describe: Callable,
                      **kw) -> None:
    """`main` for a benchmark whose contenders share files made once: in the parent, `build_fixture(args,
    folder)` fills a temporary folder (the children get it as `--work`) and returns the setup figures;
    `describe(setup)` gives the rest of `main`'s arguments (title, FLOPs, roof shapes)."""
    if args.worker:
        run_worker(args.worker, args, kw["work"])
        return
    with tempfile.TemporaryDirectory() as d:
        setup = build_fixture(args, Path(d))
        main(args=args, argv=[*argv, "--work", d], setup=setup, **kw, **describe(setup))


# ---- the driver -----------------------------------------------------------------------------------
def add_args(ap: argparse.ArgumentParser, name: str) -> None:
    """The harness's options; `name`: the default results/NAME.json."""
    ap.add_argument("--name", default=name, help="results/NAME.json")
    ap.add_argument("--work", help=argparse.SUPPRESS)  # the fixture folder (the parent makes it)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each kept contender, interleaved")
    ap.add_argument("--keep", type=int, default=2, help="the peer's best settings per precision kept after round 1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default=",".join(PRECISIONS),
                    help="comma-separated subset of the precisions to run (default: all; the JSON records which)")
    ap.add_argument("--only", help="comma-separated contender names (debugging; the JSON is not written)")
    ap.add_argument("--json", type=Path, help="where to write the result (default benchmarks/results/NAME.json)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)


def main(*, name: str, title: str, unit: str, script: str, args: argparse.Namespace, argv: Sequence[str],
         contenders: list[Contender], work: Callable, setup: dict | None = None,
         flops_per_unit: float | None = None, flops_formula: str = "", roof_shapes: dict | None = None,
         roof_tokens: tuple[int, int] | None = None, derive: Callable | None = None) -> dict | None:
    """A benchmark's entry point: the worker in a child, the grid in the parent (then the JSON)."""
    if args.worker:
        run_worker(args.worker, args, work)
        return None
    if args.only:
        contenders = [c for c in contenders if c.name in args.only.split(",")]
    precisions = args.precisions.split(",")
    if unknown := set(precisions) - set(PRECISIONS):
        raise SystemExit(f"--precisions: unknown {sorted(unknown)}; choose from {', '.join(PRECISIONS)}")
    contenders = [c for c in contenders if c.precision in precisions]
    argv = _without(argv, "--json")
    started, load_start, code = time.strftime("%Y-%m-%dT%H:%M:%S"), os.getloadavg(), commit()
    roof = measure_roof(roof_shapes, *roof_tokens, args.threads) if roof_shapes and roof_tokens else None
    print(f"{title}: {len(contenders)} contenders, {args.repeats} runs each after pruning (keep {args.keep} per "
          f"precision), {args.threads} threads, load average {load_start[0]:.2f}", flush=True)
    if roof:
        print(f"  matmul roof: fp32 {roof['fp32'] / 1e9:.1f}, bf16 {roof['bf16'] / 1e9:.1f} GFLOP/s", flush=True)
    contenders = list(contenders)
    runs = run_grid(Path(script), contenders, argv, args.threads, args.repeats, args.keep,
                    say=lambda s: print(s, flush=True), derive=derive)
    rows = [summarize(c, runs[c.name], args.repeats, flops_per_unit, roof) for c in contenders]
    result = {"benchmark": name, "title": title, "unit": unit, **code, "command": " ".join(
        ["python", f"benchmarks/{Path(script).name}", *argv]), "machine": machine(), "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "load_start": load_start, "load_end": os.getloadavg(),
        "threads": args.threads, "repeats": args.repeats, "keep": args.keep, "precisions": precisions, "setup": setup or {}, "roof": roof,
        "flops_per_unit": flops_per_unit, "flops_formula": flops_formula, "contenders": rows,
        "comparisons": comparisons(rows)}
    print("\n" + "\n".join(render(result)))
    print(f"load average: start {load_start[0]:.2f}, end {result['load_end'][0]:.2f}")
    if not args.only:
        out = args.json or RESULTS / f"{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"written: {out}")
    return result
