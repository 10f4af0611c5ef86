"""How good is a judge at grading documents 0-5, and how well does the regressor follow it?

Runs (or reads the output of) `llm-recipe curate annotate-quality` on the bundled sample corpus with
labelled noise (spam, menus, boilerplate, wrong language, keyword stuffing, ...) and the synthetic
web crawl, then breaks the judge's scores down by what each document really is:

  * the judge's score distribution (rounded histogram, quantiles, mean p(digit)),
  * mean score of clean documents vs each noise type, and the AUC of the score for telling clean
    documents from drop-type noise (0.5 = the judge cannot tell them apart),
  * the regressor's agreement with the judge on held-out documents (Spearman, F1 at the threshold),
    as annotate-quality reported it.

    python benchmarks/quality_judge.py --judge-model /work/models/smollm2 --sample 300 --out runs/qj
    python benchmarks/quality_judge.py --from runs/qj     # only the breakdown of an earlier run
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path


def auc(pos: list[float], neg: list[float]) -> float | None:
    """P(score of a random positive > score of a random negative), ties counted half."""
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def labels_of(run: Path) -> dict[str, str]:
    """Document id -> what it is: clean, a noise type (noisy sample corpus), or a crawl page kind."""
    out: dict[str, str] = {}
    lab = run / "curated" / "noisy_sample" / "labels.jsonl"
    if lab.exists():
        for line in lab.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            out[rec["id"]] = f"noise:{rec['noise']}" if rec["action"] == "drop" else f"repairable:{rec['noise']}"
    return out


def breakdown(run: Path) -> dict:
    qa = run / "quality_annotation"
    report = json.loads((qa / "report.json").read_text(encoding="utf-8"))
    rows = [json.loads(x) for x in (qa / "annotations.jsonl").read_text(encoding="utf-8").splitlines()]
    labels = labels_of(run)
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["judge_score"] is None:
            continue
        kind = labels.get(r["id"], "crawl" if r["source"] == "crawl" else "clean")
        groups[kind].append(r["judge_score"])
    noise = [s for k, v in groups.items() if k.startswith("noise:") for s in v]
    out = {
        "judge": report["judge"], "judged": report["judged"], "judge_scores": report["judge_scores"],
        "by_kind": {k: {"n": len(v), "mean": round(statistics.mean(v), 3)} for k, v in sorted(groups.items())},
        "auc_clean_vs_drop_noise": None if not noise else round(auc(groups.get("clean", []), noise), 3),
        "agreement": report["agreement"], "languages": report["languages"],
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge-model")
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("runs/quality_judge"))
    ap.add_argument("--from", dest="from_", type=Path, default=None, help="an earlier run's output dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run = args.from_
    if run is None:
        if not args.judge_model:
            raise SystemExit("--judge-model DIR (or --from RUN)")
        run = args.out
        cmd = [sys.executable, "-m", "llm_recipe", "curate", "annotate-quality", "-c", "curate", "-o", str(run),
               "--judge-model", args.judge_model, "--sample", str(args.sample), "--seed", str(args.seed),
               "--set", "corpus.docs_per_source=200", "--set", "curate.input.sample_noise_per_type=10",
               "--set", "curate.quality.annotate.max_doc_chars=1200"]
        subprocess.run(cmd, check=True)
    res = breakdown(run)
    js, ag = res["judge_scores"], res["agreement"]
    print(f"judge {res['judge']}: {res['judged']} documents ({res['languages']})")
    print(f"  scores: mean {js['mean']:.2f} std {js['std']:.2f} min {js['min']:.2f} max {js['max']:.2f} "
          f"quantiles {js['quantiles']} rounded {js['rounded_histogram']}")
    if "mean_digit_probability" in js:
        print(f"  mean p(0..5): {js['mean_digit_probability']}")
    for kind, v in res["by_kind"].items():
        print(f"  {kind:<28} n={v['n']:<4} mean score {v['mean']:.2f}")
    print(f"  AUC clean vs drop-type noise: {res['auc_clean_vs_drop_noise']}")
    print(f"regressor vs judge on {ag['docs']} held-out docs: Spearman {ag['spearman']}, Pearson {ag['pearson']}, "
          f"MAE {ag['mae']} (mean predictor {ag['mae_predict_train_mean']}), F1 at {ag['threshold']}: {ag['f1']} "
          f"(judge positives {ag['judge_positive_share']})")
    (run / "quality_judge.json").write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
