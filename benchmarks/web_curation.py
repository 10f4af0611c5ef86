"""Web curation throughput: our WARC reader + extraction + filters vs datatrove's WarcReader +
Trafilatura extractor, on the same WARC file, one core each.

The file: the synthetic crawl of `demo/web_pages` (32 labelled JA/EN article pages on 8 sites in
UTF-8 / Shift_JIS / EUC-JP / windows-1252, BBS threads, affiliate pages, ...) repeated to
`--pages` response records (each with its request and metadata records, as Common Crawl writes
them, and `WARC-Identified-Payload-Type` set as Common Crawl sets it), gzip per record.

Contenders (each a fresh process per run, interleaved over `--repeats` rounds):
  ours: read+extract          record_sources (fastwarc, charset rule) + the `extract` step
                              (trafilatura, favor_precision)
  ours: read+extract+filters  + normalize, the web filters (BBS, ads, NG words) and the default
                              heuristic chain (language, length, short lines, ratios, Gopher
                              quality and repetition, hiragana, decontamination), through
                              `run_steps` with full accounting
  datatrove (defaults)        WarcReader (warcio, UTF-8 else cchardet) + Trafilatura(favour_precision=True,
                              deduplicate=True, timeout=1): extraction in its sandbox process
  datatrove (no dedup)        the same with deduplicate=False (trafilatura's cross-document dedup
                              cache off, as ours; on a crawl that repeats pages it drops most of
                              them, so its output is not comparable with it on)
  ... fast                    both sides with trafilatura's `fast` mode (no readability / jusText
                              comparison) and favor balanced: ours `extract.fallback: false`,
                              datatrove `Trafilatura(favour_precision=False, fast=True)`
Reported per contender, for the run itself (from the first record read to the last document out,
after imports and setup, which are reported apart: `setup s`): pages/s (wall, median of the
repeats, with min-max), CPU seconds user+sys of the process and its children (datatrove's sandbox
process included), pages per CPU-second (the "per core" figure), the whole process's CPU (wait4),
peak RSS, documents out, and extraction precision / recall on the labelled pages
(`extraction_scores`), so speed is not bought with worse output. The load average is printed.

datatrove and its reader's imports (cchardet, python-magic) live in a separate venv layered over
the dev one (see benchmarks/curation_throughput.py):
    python3 -m venv .venv-bench && .venv/bin/python -c "import site; print(site.getsitepackages()[0])" \\
        > .venv-bench/lib/python3.11/site-packages/_dev_venv.pth
    .venv-bench/bin/pip install -c constraints/ci.txt datatrove==0.10.1 python-magic==0.4.27 faust-cchardet==3.2.0
    python benchmarks/web_curation.py --peer-python .venv-bench/bin/python [--pages 2000 --repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELF = Path(__file__).resolve()


def build_warc(path: Path, pages: int, seed: int) -> dict:
    """The benchmark WARC; returns {url: label} of the labelled pages it holds."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from llm_recipe.demo.web_pages import sample_crawl

    recs = sample_crawl(seed)
    labels = {}
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for i in range(pages):
            r = recs[i % len(recs)]
            url = f"{r['url']}?copy={i // len(recs)}"
            if "label" in r:
                labels[url] = r["label"]
            mime = r["content_type"].split(";")[0]
            w.write_record(w.create_warc_record(url, "request", http_headers=StatusAndHeaders(
                "GET / HTTP/1.1", [("Host", url.split("/")[2])], is_http_request=True)))
            h = StatusAndHeaders("200 OK", [("Content-Type", r["content_type"])], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(r["body"]), http_headers=h,
                                                warc_headers_dict={"WARC-Identified-Payload-Type": mime}))
            w.write_record(w.create_warc_record(url, "metadata", payload=io.BytesIO(b"fetchTimeMs: 100\n"),
                                                warc_content_type="application/warc-fields"))
    return labels


# ---- workers (run in their own process) ---------------------------------------------------
def _cpu() -> float:
    """CPU seconds (user+sys) of this process and of its waited-for children (datatrove's sandbox)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def worker_ours(warc: str, filters: bool, fast: bool):
    """The run as a generator of output docs (imports and step construction done)."""
    from llm_recipe.config import CurateConfig
    from llm_recipe.data.curate import build_steps
    from llm_recipe.data.pipeline import run_steps
    from llm_recipe.data.readers import ShardReader

    cfg = CurateConfig.model_validate({
        "web": {"bbs_comments": {"enabled": True}, "ads": {"enabled": True}, "ng_words": {"enabled": True},
                "extract": {"fallback": not fast, "favor": "balanced" if fast else "precision"}},
        "pii": {"enabled": False}, "ner": {"enabled": False}})
    steps, _ = build_steps(cfg)
    if not filters:
        steps = [s for s in steps if s.name == "extract"]
    run_steps(steps, [])  # nothing to do; the steps' imports done
    # what the steps load lazily on their first document, loaded before the clock as datatrove's
    # worker imports trafilatura before its clock: the extractor's import and the language-ID model
    import trafilatura  # noqa: F401

    if filters:
        from llm_recipe.data.filters.language import identify

        identify("warm-up")  # loads the model once per process

    def run():
        batch = []
        for rec in ShardReader().read(warc):
            if isinstance(rec, dict):
                batch.append(rec)
            if len(batch) == 500:
                yield from run_steps(steps, batch).kept
                batch = []
        if batch:
            yield from run_steps(steps, batch).kept

    return run()


def worker_datatrove(warc: str, dedup: bool, fast: bool):
    import cchardet  # noqa: F401  (what WarcReader imports per record: loaded before the clock starts)
    import magic  # noqa: F401
    import trafilatura  # noqa: F401
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    reader = WarcReader(str(Path(warc).parent), glob_pattern=Path(warc).name)
    extractor = (Trafilatura(favour_precision=False, deduplicate=dedup, timeout=1, fast=True) if fast
                 else Trafilatura(favour_precision=True, deduplicate=dedup, timeout=1))
    return extractor.run(reader.run())


def run_worker(args) -> None:
    t0, c0 = time.perf_counter(), _cpu()
    fast = args.worker.endswith("-fast")
    if args.worker.startswith("ours"):
        run = worker_ours(args.warc, args.worker.startswith("ours-filters"), fast)
    else:
        run = worker_datatrove(args.warc, args.worker == "datatrove", fast)
    t1, c1 = time.perf_counter(), _cpu()
    docs = [{"url": d["url"], "text": d["text"]} if isinstance(d, dict) else
            {"url": d.metadata.get("url"), "text": d.text} for d in run]
    t2, c2 = time.perf_counter(), _cpu()
    Path(args.out).write_text(json.dumps({"setup_s": t1 - t0, "setup_cpu": c1 - c0, "wall": t2 - t1,
                                          "cpu": c2 - c1, "docs": docs}, ensure_ascii=False), encoding="utf-8")


# ---- driver ---------------------------------------------------------------------------------
CONTENDERS = {
    "ours: read+extract": "ours-extract",
    "ours: read+extract+filters": "ours-filters",
    "datatrove (defaults)": "datatrove",
    "datatrove (no dedup)": "datatrove-nodedup",
    "ours fast: read+extract": "ours-extract-fast",
    "ours fast: read+extract+filters": "ours-filters-fast",
    "datatrove fast (no dedup)": "datatrove-nodedup-fast",
}


def launch(python: str, worker: str, warc: Path, tmp: Path) -> dict:
    out = tmp / f"{worker}.json"
    env = {**os.environ, "PYTHONPATH": str(SELF.parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([python, str(SELF), "--worker", worker, "--warc", str(warc), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    total = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    if status != 0:
        raise SystemExit(f"{worker} failed:\n{err[-2000:]}")
    res = json.loads(out.read_text(encoding="utf-8"))
    return {**res, "process_wall": total, "process_cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024}


def quality(docs: list[dict], labels: dict) -> dict:
    from llm_recipe.data.web.extract import extraction_scores

    by_url = {d["url"]: d["text"] for d in docs}
    pr = [extraction_scores(by_url.get(u, ""), lab) for u, lab in labels.items()]
    return {"precision": round(statistics.mean(p for p, _ in pr), 3), "recall": round(statistics.mean(r for _, r in pr), 3),
            "labelled_pages_out": sum(u in by_url for u in labels), "labelled_pages": len(labels)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=sorted(CONTENDERS.values()))
    ap.add_argument("--warc")
    ap.add_argument("--out")
    ap.add_argument("--pages", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peer-python", default=str(SELF.parents[1] / ".venv-bench" / "bin" / "python"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.worker:
        return run_worker(args)
    tmp = Path(tempfile.mkdtemp(prefix="web-curation-"))
    warc = tmp / "bench.warc.gz"
    labels = build_warc(warc, args.pages, args.seed)
    load_before = os.getloadavg()
    print(f"WARC: {args.pages} pages ({len(labels)} labelled), {warc.stat().st_size / 1e6:.1f} MB gz; "
          f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    runs: dict[str, list[dict]] = {k: [] for k in CONTENDERS}
    for _ in range(args.repeats):
        for name, worker in CONTENDERS.items():
            python = args.peer_python if worker.startswith("datatrove") else sys.executable
            runs[name].append(launch(python, worker, warc, tmp))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    summary = {}
    print(f"{'contender':<30}{'pages/s':>9}{'(min-max)':>12}{'cpu s':>8}{'pages/cpu-s':>13}{'setup s':>9}"
          f"{'proc cpu':>9}{'RSS MB':>8}{'docs out':>9}{'P':>7}{'R':>7}")
    for name, rs in runs.items():
        walls = [r["wall"] for r in rs]
        med, cpu = statistics.median(walls), statistics.median(r["cpu"] for r in rs)
        q = quality(rs[0]["docs"], labels)
        summary[name] = {"pages_per_s": round(args.pages / med, 1),
                         "pages_per_s_range": [round(args.pages / max(walls), 1), round(args.pages / min(walls), 1)],
                         "wall_s": [round(w, 3) for w in walls], "cpu_s_median": round(cpu, 3),
                         "cpu_s": [round(r["cpu"], 3) for r in rs], "pages_per_cpu_s": round(args.pages / cpu, 1),
                         "setup_s_median": round(statistics.median(r["setup_s"] for r in rs), 3),
                         "process_cpu_s_median": round(statistics.median(r["process_cpu"] for r in rs), 3),
                         "peak_rss_mb": round(max(r["rss_mb"] for r in rs)), "docs_out": len(rs[0]["docs"]), **q}
        s = summary[name]
        rng = f"{s['pages_per_s_range'][0]:.0f}-{s['pages_per_s_range'][1]:.0f}"
        print(f"{name:<30}{s['pages_per_s']:>9.1f}{rng:>12}{cpu:>8.2f}{s['pages_per_cpu_s']:>13.1f}"
              f"{s['setup_s_median']:>9.2f}{s['process_cpu_s_median']:>9.2f}{s['peak_rss_mb']:>8}{s['docs_out']:>9}"
              f"{q['precision']:>7.3f}{q['recall']:>7.3f}")
    sys.path.insert(0, str(SELF.parent))
    from harness import commit

    result = {"pages": args.pages, "repeats": args.repeats, "load_before": load_before, "load_after": os.getloadavg(),
              "command": "python benchmarks/web_curation.py " + " ".join(sys.argv[1:]), **commit(),
              "contenders": summary, "ratios": ratios(summary, runs)}
    print(figures_text(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")


PEERS = {"": ("datatrove (defaults)", "datatrove (no dedup)"), "fast": ("datatrove fast (no dedup)",)}


def ratios(summary: dict, runs: dict[str, list[dict]]) -> dict:
    """Ours / datatrove's faster setting, pages per CPU-second: of the medians, and per repeat (the
    contenders of one repeat ran back to back, so machine drift cancels in each pair)."""
    out = {}
    for mode, peers in PEERS.items():
        peer = max(summary[p]["pages_per_cpu_s"] for p in peers)
        peer_wall = max(summary[p]["pages_per_s"] for p in peers)
        for what in ("read+extract", "read+extract+filters"):
            name = f"ours{' ' + mode if mode else ''}: {what}"
            pairs = [min(runs[p][i]["cpu"] for p in peers) / runs[name][i]["cpu"] for i in range(len(runs[name]))]
            out[name] = {"vs": " / ".join(peers), "of_medians": summary[name]["pages_per_cpu_s"] / peer,
                         "wall_of_medians": summary[name]["pages_per_s"] / peer_wall, "paired": pairs}
    return out


def figures_text(r: dict) -> str:
    """The README block, from the JSON this script writes with --json."""
    c = r["contenders"]
    lines = [f"{r['pages']} pages of the bundled synthetic crawl, {r['repeats']} interleaved repeats, commit "
             f"`{r['commit'][:7]}`, load {r['load_before'][0]:.1f}–{r['load_after'][0]:.1f}; pages per CPU-second "
             "(median [min–max]); precision / recall of the main text by character 5-grams on the labelled pages:"]
    for name, s in c.items():
        rng = [r["pages"] / max(s["cpu_s"]), r["pages"] / min(s["cpu_s"])]
        lines.append(f"- {name}: {s['pages_per_cpu_s']:.0f} [{rng[0]:.0f}–{rng[1]:.0f}], P / R {s['precision']:.3f} / "
                     f"{s['recall']:.3f}, {s['docs_out']} documents out, peak RSS {s['peak_rss_mb']} MB")
    for name, x in r["ratios"].items():
        p = x["paired"]
        lines.append(f"- {name} ÷ {x['vs']} (its faster): **{x['of_medians']:.2f}×** by the medians "
                     f"({x['wall_of_medians']:.2f}× by wall time); per repeat median {statistics.median(p):.2f}×, "
                     f"range {min(p):.2f}–{max(p):.2f}× (goal ≥ 1.0×)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
