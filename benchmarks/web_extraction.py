"""Main-content extraction on the project's labelled web pages: precision / recall by characters.

The 32 labelled pages of `demo/web_pages` (16 Japanese, 16 English; 8 sites, 4 layouts: news,
table-layout blog with a BBS-style comment section, wiki, div-soup column; UTF-8, Shift_JIS,
EUC-JP and windows-1252, declared in a meta tag, only in the HTTP header, or not at all) are
written to files and read back through the project's reader (`record_sources`: the charset rule
is part of what is measured), then each extractor runs on every page:

  trafilatura (precision)   the `extract` step's default (favor_precision)
  trafilatura (balanced)    trafilatura's default
  trafilatura (recall)      favor_recall
  ... (fast)                trafilatura's `fast` mode (`fallback: false`): no readability / jusText
                            comparison
  resiliparse               extract_plain_text(main_content=True)
  regex                     `normalize.html_to_text`: the path before this step existed

Measure (`data.web.extract.extraction_scores`): the multiset of character 5-grams of the output
against that of the labelled main text, after NFKC and with all whitespace removed: precision =
shared / output n-grams, recall = shared / labelled n-grams; mean over pages (and by language,
by layout), with the worst pages named. Speed: pages/s over `--repeats` interleaved passes,
median and spread of wall time, CPU time (user+sys) beside it, peak RSS of the process.

    python benchmarks/web_extraction.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from llm_recipe.config.curate import ExtractConfig
from llm_recipe.data.normalize import html_to_text
from llm_recipe.data.web.extract import extract_main, extraction_scores
from llm_recipe.demo.web_pages import write_labelled_pages
from llm_recipe.record_sources import iter_source

METHODS = {
    "trafilatura (precision)": lambda h: extract_main(h, ExtractConfig(favor="precision"))[0],
    "trafilatura (balanced)": lambda h: extract_main(h, ExtractConfig(favor="balanced"))[0],
    "trafilatura (recall)": lambda h: extract_main(h, ExtractConfig(favor="recall"))[0],
    "trafilatura (precision, fast)": lambda h: extract_main(h, ExtractConfig(favor="precision", fallback=False))[0],
    "trafilatura (balanced, fast)": lambda h: extract_main(h, ExtractConfig(favor="balanced", fallback=False))[0],
    "resiliparse": lambda h: extract_main(h, ExtractConfig(backend="resiliparse"))[0],
    "regex": lambda h: html_to_text(h)[0],
}


def load_pages(seed: int) -> list[dict]:
    out = Path(tempfile.mkdtemp(prefix="web-extraction-"))
    write_labelled_pages(out, seed)
    labels = [json.loads(x) for x in (out / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    pages = []
    for lab in labels:
        (_, rec), = list(iter_source(out / "pages" / lab["file"]))
        if not isinstance(rec, dict):
            raise SystemExit(f"{lab['file']}: not read ({rec})")
        pages.append({**lab, "html": rec["text"], "charset": rec["meta"]["charset"],
                      "charset_from": rec["meta"]["charset_from"]})
    return pages


def score(pages: list[dict], fn) -> dict:
    rows = []
    for p in pages:
        prec, rec = extraction_scores(fn(p["html"]), p["label"])
        rows.append({"file": p["file"], "lang": p["lang"], "layout": p["layout"], "p": prec, "r": rec})

    def mean(sel):
        return {"precision": round(statistics.mean(r["p"] for r in sel), 3),
                "recall": round(statistics.mean(r["r"] for r in sel), 3), "pages": len(sel)}

    groups = defaultdict(list)
    for r in rows:
        groups[r["lang"]].append(r)
        groups[r["layout"]].append(r)
    worst = sorted(rows, key=lambda r: min(r["p"], r["r"]))[:3]
    return {"all": mean(rows), **{k: mean(v) for k, v in sorted(groups.items())},
            "worst": [f"{r['file']} P {r['p']:.2f} R {r['r']:.2f}" for r in worst]}


def timed(pages: list[dict], fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for p in pages:
        fn(p["html"])
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = ap.parse_args()
    pages = load_pages(args.seed)
    charsets = defaultdict(int)
    for p in pages:
        charsets[f"{p['encoding']}->{p['charset']} ({p['charset_from']})"] += 1
        if p["charset"] is None:
            raise SystemExit(f"{p['file']}: charset undecided")
    print(f"pages: {len(pages)} ({sum(p['lang'] == 'ja' for p in pages)} ja), charsets: {dict(charsets)}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {name: score(pages, fn) for name, fn in METHODS.items()}
    walls, cpus = defaultdict(list), defaultdict(list)
    for _ in range(args.repeats):  # interleaved
        for name, fn in METHODS.items():
            w, c = timed(pages, fn)
            walls[name].append(w)
            cpus[name].append(c)
    print(f"{'extractor':<30}{'P':>6}{'R':>6}{'P ja':>7}{'R ja':>6}{'P en':>7}{'R en':>6}"
          f"{'pages/s':>9}{'(min-max)':>14}{'cpu s':>7}")
    for name, res in results.items():
        w = walls[name]
        med = statistics.median(w)
        res["speed"] = {"pages_per_s": round(len(pages) / med, 1),
                        "pages_per_s_range": [round(len(pages) / max(w), 1), round(len(pages) / min(w), 1)],
                        "wall_s_median": round(med, 4), "cpu_s_median": round(statistics.median(cpus[name]), 4)}
        a, ja, en = res["all"], res["ja"], res["en"]
        rng = res["speed"]["pages_per_s_range"]
        print(f"{name:<30}{a['precision']:>6.3f}{a['recall']:>6.3f}{ja['precision']:>7.3f}{ja['recall']:>6.3f}"
              f"{en['precision']:>7.3f}{en['recall']:>6.3f}{len(pages) / med:>9.1f}"
              f"{f'{rng[0]:.0f}-{rng[1]:.0f}':>14}{statistics.median(cpus[name]):>7.2f}")
    for name, res in results.items():
        layouts = ", ".join(f"{k} {res[k]['precision']:.2f}/{res[k]['recall']:.2f}"
                            for k in ("news", "blog", "wiki", "column"))
        print(f"  {name}: by layout (P/R) {layouts}; worst: {'; '.join(res['worst'])}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "peak_rss_mb": rss, "pages": len(pages)},
                                        ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
