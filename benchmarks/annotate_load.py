"""Load on the annotation server: N annotators answering at once over loopback, each as fast as the
server lets it (GET the next item, POST an answer, the POST acknowledged only after its commit).
Prints answers per second, CPU time of the server and of the clients, and the distribution of
labels per item, and checks that every acknowledged answer is stored exactly once with the value
that was clicked and that no item got more labels than the project's overlap (items are reserved for
the annotators they are shown to: `annotate/leases.py`). The server is `annotate.app.serve`
(uvicorn, one process, SQLite in WAL mode with synchronous=FULL) in its own process, as
`llm-recipe annotate serve` runs it.

    python benchmarks/annotate_load.py                       # 20 annotators x 500 answers, overlap 2
    python benchmarks/annotate_load.py --annotators 50 --answers 100 --items 5000 --overlap 3

The test suite runs a small version (tests/test_annotate_server.py: 20 x 50, 1200 items).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from annotate_helpers import (  # noqa: E402
    Server,
    expected_answers,
    labels_per_item,
    make_project,
    run_annotators,
    stored_answers,
)

from llm_recipe.annotate import store  # noqa: E402
from llm_recipe.annotate.db import open_db  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotators", type=int, default=20)
    ap.add_argument("--answers", type=int, default=500, help="answers per annotator")
    ap.add_argument("--items", type=int, default=None, help="items in the project (default: enough at the overlap)")
    ap.add_argument("--overlap", type=int, default=2, help="labels wanted per item")
    a = ap.parse_args()
    items = a.items or a.annotators * a.answers // a.overlap + a.annotators * 10
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "load.sqlite"
        names = [f"ann{i:03d}" for i in range(a.annotators)]
        project, tokens = make_project(db, items, names, overlap=a.overlap)
        with Server(db) as server:
            server_cpu0, client0 = _cpu(server.proc.pid), resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.monotonic()
            threads = run_annotators(server.base, tokens, a.answers)
            for t in threads.values():
                t.join()
            seconds = time.monotonic() - t0
            server_cpu, client1 = _cpu(server.proc.pid) - server_cpu0, resource.getrusage(resource.RUSAGE_SELF)
            client_cpu = client1.ru_utime + client1.ru_stime - client0.ru_utime - client0.ru_stime
        errors = [t.error for t in threads.values() if t.error]
        acked = sum(len(t.acked) for t in threads.values())
        rows = stored_answers(db)
        engine = open_db(str(db))
        ids = {x["name"]: x["id"] for x in store.annotators(engine, project["id"])}
        engine.dispose()
        once = max(Counter((i, x) for i, x, _ in rows).values()) == 1
        exact = set(rows) == expected_answers(db, threads, ids)
        per_item = labels_per_item(db)
    spread = dict(sorted(Counter(per_item.values()).items()))
    within = max(per_item.values()) <= a.overlap
    print(f"{a.annotators} annotators x {a.answers} answers, {items} items, overlap {a.overlap}: {acked} acknowledged "
          f"in {seconds:.1f} s = {acked / seconds:.0f} answers/s ({2 * acked / seconds:.0f} requests/s); "
          f"CPU: server {server_cpu:.1f} s, clients {client_cpu:.1f} s; load average {os.getloadavg()[0]:.2f}")
    print(f"stored: {len(rows)} rows; each (item, annotator) once: {once}; stored == acknowledged: {exact}; "
          f"client errors: {len(errors)}")
    print(f"labels per item: {spread} (items with k labels); {len(per_item)} items labelled; "
          f"none over the overlap: {within}")
    if errors or not once or not exact or not within or acked != a.annotators * a.answers:
        sys.exit(1)


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
