"""Kill -9 trials: each stage's command killed with SIGKILL at seeded random moments, then run again.

For every stage (curate, reward model, DPO, PPO, GRPO, online DPO) on tiny models:
  1. a reference run, uninterrupted, into its own folder (its final weights / files are the target);
  2. `--trials` runs into fresh folders, each killed (SIGKILL to the whole process group, workers
     included) at a moment drawn with `--seed` between the first output the reference run wrote and
     its end (a run that ends before its kill is no trial: the window shrinks to that run's length
     and a new moment is drawn, up to 4 times; the row says `finished before the kill` otherwise);
  3. after each kill, everything a completion marker vouches for is checked: every folder with a
     `complete.json` and every artifact a stage marker (`<run>/stages/<stage>.json`) names: every
     safetensors file loads whole, every JSON / JSONL file parses, every named artifact exists, i.e.
     nothing broken is marked done; then the same command runs again and must finish;
  4. the final artifact must equal the reference: the final model's tensors bit for bit (every
     training stage claims exact resume), for curate every curated file (kept and dropped) byte for byte.

    python benchmarks/kill_trials.py                                  # 3 trials of every stage
    python benchmarks/kill_trials.py --stages dpo ppo --trials 5 --seed 1 --work /tmp/kt

Prints one row per trial and a table per stage; exits 1 if any trial found a broken artifact taken
as done, a rerun that failed, or a final artifact that differs from the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from run_helpers import FAST, FAST_ALIGN  # noqa: E402

SEED = ["--seed", "1"]
SFT = [*FAST, *[kv for kv in FAST_ALIGN if kv.startswith("--set=sft.")]]


def _sets(*pairs: str) -> list[str]:
    return [f"--set={p}" for p in pairs]


def stages(base: Path) -> dict[str, dict]:
    """Each stage: its command (into OUT), its final artifact, and how that artifact is compared."""
    sft, rm = str(base / "sft" / "model"), str(base / "rm_ref" / "reward_model" / "model")
    return {
        "curate": {"argv": ["curate", "-c", "tiny", *FAST, *_sets("corpus.docs_per_source=120",
                                                                 "curate.mixing.token_budget=40000")],
                   "final": "curated", "compare": "files"},
        "rm": {"argv": ["rm", "train", "-m", sft, *_sets("rm.synthetic_pairs=96", "rm.max_steps=8", "rm.batch_size=8",
                                                         "rm.save_every=2", "rm.eval_every=4", "rm.eval_batches=1",
                                                         "rm.norm_samples=8")],
               "final": "reward_model/model", "compare": "tensors"},
        "dpo": {"argv": ["dpo", "-m", sft, *_sets("dpo.style_pairs=64", "dpo.max_steps=8", "dpo.batch_size=4",
                                                  "dpo.save_every=2", "dpo.eval_every=4", "dpo.eval_batches=1",
                                                  "dpo.eval_prompts=2", "dpo.max_new_tokens=4", "dpo.warmup_steps=0")],
                "final": "dpo/model", "compare": "tensors"},
        **{algo: {"argv": [algo, "-m", sft, *_sets(f"{algo}.iterations=4", f"{algo}.save_every=1",
                                                   f"{algo}.rollout_batch_size=8", f"{algo}.minibatch_size=8",
                                                   f"{algo}.n_prompts=16", f"{algo}.eval_prompts=2",
                                                   f"{algo}.sampling.max_new_tokens=6", f"{algo}.epochs=1",
                                                   *(["grpo.group_size=4"] if algo == "grpo" else []))],
                  "final": f"{algo}/model", "compare": "tensors"} for algo in ("ppo", "grpo")},
        "online-dpo": {"argv": ["online-dpo", "-c", "tiny", "-m", sft, "--rm", rm, *FAST,
                                *_sets("online_dpo.rounds=2", "online_dpo.prompts_per_round=6",
                                       "online_dpo.candidates.k=2", "online_dpo.candidates.sampling.max_new_tokens=6",
                                       "online_dpo.max_steps=4", "online_dpo.save_every=1", "online_dpo.batch_size=4",
                                       "online_dpo.eval_every=2", "online_dpo.eval_batches=1",
                                       "online_dpo.warmup_steps=0")],
                       "final": "online_dpo/model", "compare": "tensors"},
    }


def command(argv: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "llm_recipe", *argv, "-o", str(out), *SEED]


def run(argv: list[str], out: Path, kill_at: float | None = None) -> tuple[int, float, bool]:
    """(exit code, seconds, killed): the command in its own process group, SIGKILLed after `kill_at` s."""
    t0 = time.monotonic()
    with open(out.parent / f"{out.name}.log", "ab") as log:
        p = subprocess.Popen(command(argv, out), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            p.wait(timeout=kill_at)
            return p.returncode, time.monotonic() - t0, False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the command and its workers (curate's process pool)
            p.wait()
            return p.returncode, time.monotonic() - t0, True


def first_output_time(argv: list[str], out: Path) -> tuple[float, float]:
    """The reference run: seconds until its folder first appears, and until it ends."""
    t0 = time.monotonic()
    with open(out.parent / f"{out.name}.log", "ab") as log:
        p = subprocess.Popen(command(argv, out), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        first = None
        while p.poll() is None:
            if first is None and out.exists() and any(out.iterdir()):
                first = time.monotonic() - t0
            time.sleep(0.05)
    if p.returncode:
        raise SystemExit(f"reference run failed ({p.returncode}): see {out.parent / f'{out.name}.log'}")
    end = time.monotonic() - t0
    return (first if first is not None else end / 2), end


def vouched_for(out: Path) -> tuple[list[Path], list[str]]:
    """What a completion marker says is done: the folder of every `complete.json`, and every artifact
    of every stage marker (`<run>/stages/<stage>.json`: the stage contract's); and the stage markers
    that are themselves broken (or name an artifact that is not there)."""
    paths, bad = [m.parent for m in out.rglob("complete.json")], []
    for marker in sorted((out / "stages").glob("*.json")):
        try:
            artifacts = json.loads(marker.read_text(encoding="utf-8"))["artifacts"]
        except Exception as e:  # noqa: BLE001 - a torn marker is the finding
            bad.append(f"{marker.relative_to(out)}: {type(e).__name__}")
            continue
        for value in artifacts.values():
            for rel in value if isinstance(value, list) else [value]:
                path = out / rel if not Path(rel).is_absolute() else Path(rel)
                if not path.is_relative_to(out):
                    continue  # an input named by the marker (a model given with -m), not this run's
                if not path.exists():
                    bad.append(f"{marker.relative_to(out)}: names {rel}, which is missing")
                paths.append(path)
    return paths, bad


def marked_but_broken(out: Path) -> list[str]:
    """Files a completion marker vouches for (`vouched_for`) that do not load: a safetensors file that
    does not load whole, a JSON file that does not parse, a JSONL line that does not: a broken artifact
    a rerun would take as done."""
    from safetensors import safe_open

    paths, bad = vouched_for(out)
    for path in paths:
        for f in [path] if path.is_file() else path.rglob("*"):
            try:
                if f.suffix == ".safetensors":
                    with safe_open(str(f), "pt") as st:
                        for k in st.keys():  # noqa: SIM118 - safe_open is not iterable
                            st.get_tensor(k)
                elif f.suffix == ".json":
                    json.loads(f.read_text(encoding="utf-8"))
                elif f.suffix == ".jsonl":
                    for line in f.read_text(encoding="utf-8").splitlines():
                        json.loads(line)
            except Exception as e:  # noqa: BLE001 - any failure to read a marked file is the finding
                bad.append(f"{f.relative_to(out)}: {type(e).__name__}")
    return sorted(set(bad))


def state_at_kill(out: Path, final: str) -> str:
    """Where the run was: checkpoints, finished rounds or shards, final artifact."""
    ckpts = sorted(p.name for p in out.rglob("step-*") if p.is_dir())
    parts = [f"{len(ckpts)} ckpt" + (f" (last {ckpts[-1]})" if ckpts else "")]
    if (out / "curated").exists():
        done = out / "curated" / ".state"
        parts.append(f"{len(list(done.rglob('*.json'))) if done.exists() else 0} shard markers")
    parts.append("final " + ("complete" if (out / final / "complete.json").exists() or
                             (final == "curated" and (out / final / "stats.json").exists()) else "absent"))
    return ", ".join(parts)


def same(a: Path, b: Path, how: str) -> tuple[bool, str]:
    if how == "tensors":
        from safetensors.torch import load_file

        ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
        diff = [k for k in ta if k not in tb or not ta[k].equal(tb[k])]
        return (not diff and ta.keys() == tb.keys()), (f"{len(diff)} tensors differ" if diff else "identical tensors")
    files = sorted(p.relative_to(a) for p in a.rglob("*.jsonl") if ".state" not in p.parts)
    other = sorted(p.relative_to(b) for p in b.rglob("*.jsonl") if ".state" not in p.parts)
    diff = [str(f) for f in files if (a / f).read_bytes() != (b / f).read_bytes()] if files == other else ["file list"]
    return not diff, f"{len(files)} files " + ("identical" if not diff else f"differ: {diff[:3]}")


def trial_stage(name: str, spec: dict, work: Path, n: int, rng: random.Random) -> list[dict]:
    ref = work / f"{name}-ref"
    first, end = first_output_time(spec["argv"], ref)
    print(f"{name}: reference run {end:.1f} s (first output at {first:.1f} s)", flush=True)
    rows = []
    for t in range(n):
        out = work / f"{name}-{t}"
        for attempt in range(4):  # a run that ends before its kill (a quieter machine than the reference's)
            kill_at = rng.uniform(first, end)  # is no trial: the window shrinks to that run's length, drawn again
            code, secs, killed = run(spec["argv"], out, kill_at)
            if killed or attempt == 3:
                break
            shutil.rmtree(out)
            end = max(first + 0.5, min(end, secs) * 0.9)
        where = state_at_kill(out, spec["final"]) if killed else f"finished before the kill ({code})"
        broken = marked_but_broken(out)
        code2, secs2, _ = run(spec["argv"], out)
        ok_same, detail = same(out / spec["final"], ref / spec["final"], spec["compare"]) if code2 == 0 else (False, "-")
        row = {"stage": name, "trial": t, "kill_at_s": round(kill_at, 1), "state_at_kill": where,
               "marked_but_broken": broken, "rerun_exit": code2, "rerun_s": round(secs2, 1),
               "final_equals_reference": ok_same, "detail": detail}
        rows.append(row)
        print(f"  trial {t}: kill at {kill_at:.1f} s -> {where}; marked-but-broken {len(broken)}; rerun exit {code2} "
              f"in {secs2:.1f} s; final {detail}", flush=True)
    return rows


def setup(work: Path) -> Path:
    """A tiny SFT model (corpus -> tokenizer -> pretrain -> SFT, a few steps each) and the reference
    reward model that online DPO labels with."""
    base = work / "base"
    if not (base / "sft" / "model" / "complete.json").exists():
        code, secs, _ = run(["sft", "-c", "tiny", *SFT], base)
        if code:
            raise SystemExit(f"setup failed: see {work / 'base.log'}")
        print(f"setup: SFT model in {secs:.0f} s", flush=True)
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", nargs="+", default=["curate", "rm", "dpo", "ppo", "grpo", "online-dpo"])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temp folder, removed)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="kill_trials-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(a.seed)
    base = setup(work)
    specs = stages(base)
    need_rm = "online-dpo" in a.stages and not (base / "rm_ref" / "reward_model" / "model" / "complete.json").exists()
    if need_rm and run(specs["rm"]["argv"], base / "rm_ref")[0]:
        raise SystemExit("the reward model online DPO labels with failed to train")
    rows = []
    for name in a.stages:
        rows += trial_stage(name, specs[name], work, a.trials, rng)
    print("\n| stage | trial | killed at | state at the kill | marked but broken | rerun | final vs uninterrupted |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['trial']} | {r['kill_at_s']} s | {r['state_at_kill']} | "
              f"{len(r['marked_but_broken']) or 'none'} | exit {r['rerun_exit']} | {r['detail']} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    failed = [r for r in rows if r["marked_but_broken"] or r["rerun_exit"] or not r["final_equals_reference"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} trials passed (kill moments seeded with {a.seed}; "
          f"load average {os.getloadavg()[0]:.2f})")
    if a.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
