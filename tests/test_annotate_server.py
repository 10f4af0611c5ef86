"""The annotation server under load, as a real uvicorn process on loopback: 20 annotators answering
at once, every acknowledged answer stored exactly once, and nothing acknowledged lost when the
server is killed with SIGKILL mid-load and restarted. (benchmarks/annotate_load.py: a bigger run.)"""

import time
from collections import Counter

from annotate_helpers import (
    CSRF,
    Server,
    expected_answers,
    login,
    make_project,
    run_annotators,
    stored_answers,
)

from llm_recipe.annotate import store
from llm_recipe.annotate.db import open_db


def _ids(db, project) -> dict[str, int]:
    engine = open_db(str(db))
    ids = {a["name"]: a["id"] for a in store.annotators(engine, project["id"])}
    engine.dispose()
    return ids


def test_20_concurrent_annotators_500_answers_each_stored_exactly_once(tmp_path):
    db = tmp_path / "load.sqlite"
    names = [f"ann{i:02d}" for i in range(20)]
    project, tokens = make_project(db, 400, names)  # room for 800 answers at overlap 2
    with Server(db) as server:
        t0 = time.monotonic()
        threads = run_annotators(server.base, tokens, per_annotator=25)
        for t in threads.values():
            t.join(timeout=120)
        seconds = time.monotonic() - t0
    assert all(t.error is None for t in threads.values()), [t.error for t in threads.values()]
    assert sum(len(t.acked) for t in threads.values()) == 500
    rows = stored_answers(db)
    assert len(rows) == 500 and max(Counter((i, a) for i, a, _ in rows).values()) == 1
    assert set(rows) == expected_answers(db, threads, _ids(db, project))  # the stored values are the clicked ones
    print(f"\n500 answers by 20 concurrent annotators in {seconds:.1f} s ({500 / seconds:.0f}/s)")
    assert seconds < 60


def test_kill_9_mid_load_loses_no_acknowledged_answer(tmp_path):
    db = tmp_path / "kill.sqlite"
    project, tokens = make_project(db, 300, [f"ann{i}" for i in range(8)])
    server = Server(db)
    threads = run_annotators(server.base, tokens, per_annotator=1000)
    while sum(len(t.acked) for t in threads.values()) < 120:  # well into the load, answers in flight
        assert any(t.is_alive() for t in threads.values()), [t.error for t in threads.values()]
        time.sleep(0.01)
    server.kill()
    for t in threads.values():
        t.join(timeout=60)
    assert all(t.error is not None for t in threads.values())  # every client saw the server die
    acked = expected_answers(db, threads, ids := _ids(db, project))
    rows = stored_answers(db)
    assert acked <= set(rows), f"{len(acked - set(rows))} acknowledged answers lost"
    # Beyond the acknowledged: at most the one answer per client that was committed but not yet acknowledged.
    pending = {(t.pending[0], ids[n]) for n, t in threads.items() if t.pending}
    assert {(i, a) for i, a, _ in rows} - {(i, a) for i, a, _ in acked} <= pending
    # Restarted: each client resends the answer that was in flight (committed or not), then goes on.
    with Server(db) as again:
        for name, t in threads.items():
            if t.pending:
                client = login(again.base, tokens[name])
                csrf = CSRF.search(client.get("/annotate").text).group(1)
                r = client.post("/annotate/answer", data={"csrf": csrf, "item": t.pending[0], "choice": t.pending[1]})
                assert r.status_code == 303
                t.acked.append(t.pending)
                client.close()
        more = run_annotators(again.base, tokens, per_annotator=5, seed=100)
        for t in more.values():
            t.join(timeout=60)
    assert all(t.error is None for t in more.values())
    rows = stored_answers(db)
    assert max(Counter((i, a) for i, a, _ in rows).values()) == 1
    assert set(rows) == expected_answers(db, threads, ids) | expected_answers(db, more, ids)
