"""Load on the annotation server: N annotators answering at once over loopback, each as fast as the
server lets it (GET the next item, POST an answer, the POST acknowledged only after its commit).
Prints answers per second and checks that every acknowledged answer is stored exactly once with
the value that was clicked. The server is `annotate.app.serve` (uvicorn, one process, SQLite in
WAL mode with synchronous=FULL) in its own process, as `llm-recipe annotate serve` runs it.

    python benchmarks/annotate_load.py                       # 20 annotators x 500 answers
    python benchmarks/annotate_load.py --annotators 50 --answers 100 --items 5000

The test suite runs a small version (tests/test_annotate_server.py: 20 x 25).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from annotate_helpers import Server, expected_answers, make_project, run_annotators, stored_answers  # noqa: E402

from llm_recipe.annotate import store  # noqa: E402
from llm_recipe.annotate.db import open_db  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotators", type=int, default=20)
    ap.add_argument("--answers", type=int, default=500, help="answers per annotator")
    ap.add_argument("--items", type=int, default=None, help="items in the project (default: enough at overlap 2)")
    a = ap.parse_args()
    items = a.items or a.annotators * a.answers // 2 + a.annotators * 10  # room for the overshoot of racing annotators
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "load.sqlite"
        names = [f"ann{i:03d}" for i in range(a.annotators)]
        project, tokens = make_project(db, items, names)
        with Server(db) as server:
            t0 = time.monotonic()
            threads = run_annotators(server.base, tokens, a.answers)
            for t in threads.values():
                t.join()
            seconds = time.monotonic() - t0
        errors = [t.error for t in threads.values() if t.error]
        acked = sum(len(t.acked) for t in threads.values())
        rows = stored_answers(db)
        engine = open_db(str(db))
        ids = {x["name"]: x["id"] for x in store.annotators(engine, project["id"])}
        engine.dispose()
        once = max(Counter((i, x) for i, x, _ in rows).values()) == 1
        exact = set(rows) == expected_answers(db, threads, ids)
    print(f"{a.annotators} annotators x {a.answers} answers, {items} items: {acked} acknowledged in {seconds:.1f} s "
          f"= {acked / seconds:.0f} answers/s ({2 * acked / seconds:.0f} requests/s)")
    print(f"stored: {len(rows)} rows; each (item, annotator) once: {once}; stored == acknowledged: {exact}; "
          f"client errors: {len(errors)}")
    if errors or not once or not exact or acked != a.annotators * a.answers:
        sys.exit(1)


if __name__ == "__main__":
    main()
