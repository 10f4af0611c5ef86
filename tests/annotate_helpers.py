"""Helpers of the annotation app's tests and load benchmark: projects on disk, a real server
process (uvicorn, killable), logged-in HTTP clients and concurrent annotators."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from llm_recipe.annotate import store
from llm_recipe.annotate.auth import display_order
from llm_recipe.annotate.db import labels, open_db, server_secret
from llm_recipe.annotate.modes import MODES

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
ITEM = re.compile(r'name="item" value="(\d+)"')
XSS = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">\" onmouseover=\"window.pwned=3"


def candidates_file(path: Path, n: int, k: int = 2, payload: str = "") -> Path:
    """`prefs generate`-style records: n prompts with k answers each (`payload` appended to every text)."""
    path.write_text("".join(json.dumps({"prompt": f"question {i}{payload}",
                                        "responses": [f"answer {j} to {i}{payload}" for j in range(k)]}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


def make_project(db: Path, n_items: int, annotators: list[str], mode: str = "pairwise", k: int = 2,
                 overlap: int = 2, payload: str = "") -> tuple[dict, dict[str, str]]:
    """A project of `n_items` candidates and its annotators' login tokens, written straight to the database."""
    engine = open_db(str(db))
    src = candidates_file(db.parent / f"cands-{mode}-{n_items}.jsonl", n_items, k, payload)
    pid = store.create_project(engine, f"p-{mode}", mode, "Pick the more helpful answer.", overlap, src)
    tokens = {a: store.add_annotator(engine, pid, a) for a in annotators}
    project = store.project(engine, pid)
    engine.dispose()
    return project, tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`annotate.app.serve` (the function `llm-recipe annotate serve` runs) in its own process, with
    `options` (serve's keyword arguments); with `cli`, the command itself (slower to start: the CLI
    imports torch). `output` holds what it printed before it was ready (the admin token line)."""

    def __init__(self, db: Path, port: int | None = None, cli: bool = False, **options):
        self.db, self.port = db, port or free_port()
        scheme = "https" if options.get("ssl_certfile") else "http"
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        code = f"from llm_recipe.annotate.app import serve; serve({str(db)!r}, port={self.port}, **{options!r})"
        argv = (["-m", "llm_recipe", "annotate", "serve", "--db", str(db), "--port", str(self.port)] if cli
                else ["-c", code])
        self.proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.output = self.proc.stdout.readline().decode()  # the first line comes before serving starts
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read().decode()}")
            try:
                if httpx.get(self.base + "/login", timeout=2, verify=False).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("server did not start within 60 s")

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no shutdown handler runs
        self.proc.wait(timeout=30)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def login(base: str, token: str, **kw) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60, **kw)
    csrf = CSRF.search(client.get("/login").text).group(1)
    r = client.post("/login", data={"token": token, "csrf": csrf})
    assert r.status_code == 303, r.text
    return client


class Annotator(threading.Thread):
    """Answers up to `n` items as fast as the server lets it: GET the next item, POST a random choice.
    `acked` holds (item id, choice) of every answer the server acknowledged (303 after its commit);
    `pending` the one on its way when the connection broke, if any."""

    def __init__(self, base: str, token: str, n: int, seed: int, choices=("1", "2", "tie")):
        super().__init__(daemon=True)
        self.base, self.token, self.n, self.choices = base, token, n, choices
        self.rng = random.Random(seed)
        self.acked: list[tuple[int, str]] = []
        self.pending: tuple[int, str] | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        client = None
        try:
            client = login(self.base, self.token)
            while len(self.acked) < self.n:
                page = client.get("/annotate").text
                found = ITEM.search(page)
                if found is None:  # nothing left for this annotator
                    return
                self.pending = (int(found.group(1)), self.rng.choice(self.choices))
                r = client.post("/annotate/answer", data={"csrf": CSRF.search(page).group(1),
                                                          "item": self.pending[0], "choice": self.pending[1]})
                assert r.status_code == 303, r.text
                self.acked.append(self.pending)
                self.pending = None
        except Exception as e:  # a killed server: the test looks at `acked` and `pending`
            self.error = e
        finally:
            if client is not None:
                client.close()


def run_annotators(base: str, tokens: dict[str, str], per_annotator: int, seed: int = 0) -> dict[str, Annotator]:
    threads = {name: Annotator(base, tok, per_annotator, seed + i) for i, (name, tok) in enumerate(tokens.items())}
    for t in threads.values():
        t.start()
    return threads


def labels_per_item(db: Path) -> Counter:
    """How many labels (answers that are not skips) each item got."""
    return Counter(item for item, _, value in stored_answers(db) if value is not None)


def stored_answers(db: Path) -> list[tuple[int, int, str]]:
    """(item id, annotator id, value JSON) of every stored answer."""
    engine = open_db(str(db))
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(labels.select().with_only_columns(
            labels.c.item_id, labels.c.annotator_id, labels.c.value))]
    engine.dispose()
    return rows


def expected_answers(db: Path, threads: dict[str, Annotator], ids: dict[str, int]) -> set[tuple[int, int, str]]:
    """(item id, annotator id, value JSON) the server must have stored for every acknowledged answer:
    the choice as clicked, turned into the item's own order by the display order the server used."""
    engine = open_db(str(db))
    secret = server_secret(engine)
    engine.dispose()
    mode = MODES["pairwise"]
    return {(item, ids[name], json.dumps(mode.parse(choice, display_order(secret, ids[name], item, 2))))
            for name, t in threads.items() for item, choice in t.acked}
