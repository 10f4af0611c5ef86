"""The annotation app through its HTTP interface (FastAPI's TestClient, no server process): login
tokens, CSRF and who may see what; model output as text; random answer order recorded and position
bias; kappa and export equal to `prefs agreement`; transactional answers; the three modes; bad input."""

import itertools
import json
import os
import random
import re

import pytest
from annotate_helpers import CSRF, ITEM, XSS, candidates_file
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event
from typer.testing import CliRunner

from llm_recipe.annotate import stats, store
from llm_recipe.annotate.app import create_app
from llm_recipe.annotate.auth import display_order
from llm_recipe.annotate.db import labels, metadata
from llm_recipe.annotate.modes import MODES
from llm_recipe.preference.agreement import agreement_report
from llm_recipe.preference.human import read_annotations

PG = os.environ.get("LLM_RECIPE_TEST_POSTGRES_URL")


def _login(app, token: str) -> TestClient:
    c = TestClient(app, follow_redirects=False)
    r = c.post("/login", data={"token": token, "csrf": CSRF.search(c.get("/login").text).group(1)})
    assert r.status_code == 303, r.text
    return c


class Setup:
    """A database with one project, its annotators logged in, and the admin logged in."""

    def __init__(self, tmp_path, mode="pairwise", n=12, k=2, names=("alice", "bob"), payload="", overlap=2, db=None):
        self.db = db or str(tmp_path / "a.sqlite")
        self.app = create_app(self.db)
        self.engine, self.secret = self.app.state.site.engine, self.app.state.site.secret
        src = candidates_file(tmp_path / "cands.jsonl", n, k, payload)
        self.pid = store.create_project(self.engine, "p", mode, f"guidelines{payload}", overlap, src,
                                        min_agreement=0.6)
        self.tokens = {a: store.add_annotator(self.engine, self.pid, a) for a in names}
        self.clients = {a: _login(self.app, t) for a, t in self.tokens.items()}
        self.admin = _login(self.app, store.admin_token(self.engine))
        self.ids = {a["name"]: a["id"] for a in store.annotators(self.engine, self.pid)}

    def answer(self, who: str, choice: str):
        """GET the next item, answer it; returns (item id, response)."""
        page = self.clients[who].get("/annotate").text
        item = int(ITEM.search(page).group(1))
        return item, self.clients[who].post("/annotate/answer", data={
            "csrf": CSRF.search(page).group(1), "item": item, "choice": choice})

    def rows(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(labels.select()).mappings()]


def test_login_tokens_csrf_and_roles(tmp_path):
    s = Setup(tmp_path)
    anon = TestClient(s.app, follow_redirects=False)
    assert anon.get("/annotate").headers["location"] == "/login"
    assert anon.get("/admin/projects/1/export/pairs.jsonl").headers["location"] == "/login"
    r = anon.post("/annotate/answer", data={"csrf": "x", "item": 1, "choice": "1"})
    assert r.status_code == 303 and r.headers["location"] == "/login"  # no anonymous writes
    login_csrf = CSRF.search(anon.get("/login").text).group(1)
    assert anon.post("/login", data={"token": "not-a-token", "csrf": login_csrf}).status_code == 401
    assert anon.post("/login", data={"token": s.tokens["alice"], "csrf": "0" * 64}).status_code == 403
    assert s.rows() == []

    alice, bob = s.clients["alice"], s.clients["bob"]
    set_cookie = TestClient(s.app, follow_redirects=False).post(
        "/login", data={"token": s.tokens["alice"], "csrf": "0"}).headers.get("set-cookie", "")
    assert "llmr_session" not in set_cookie  # a failed login sets no session
    page = alice.get("/annotate")
    assert "default-src 'none'" in page.headers["content-security-policy"] and page.headers["x-frame-options"] == "DENY"
    for path in ("/admin", f"/admin/projects/{s.pid}", f"/admin/projects/{s.pid}/export/annotations.jsonl"):
        assert alice.get(path).status_code == 403, path
    assert s.admin.get("/annotate").status_code == 403
    item = int(ITEM.search(page.text).group(1))
    # A write with no CSRF token, a wrong one, or another annotator's is refused, and nothing is stored.
    bob_csrf = CSRF.search(bob.get("/annotate").text).group(1)
    for csrf in ("", "f" * 64, bob_csrf):
        r = alice.post("/annotate/answer", data={"csrf": csrf, "item": item, "choice": "1"})
        assert r.status_code in (403, 422), r.text  # a missing field is 422, a wrong token 403
    admin_csrf = CSRF.search(s.admin.get("/admin").text).group(1)
    assert alice.post(f"/admin/projects/{s.pid}/annotators", data={"csrf": admin_csrf, "name": "eve"}).status_code == 403
    assert s.admin.post(f"/admin/projects/{s.pid}/annotators", data={"csrf": bob_csrf, "name": "eve"}).status_code == 403
    assert s.rows() == [] and [a["name"] for a in store.annotators(s.engine, s.pid)] == ["alice", "bob"]
    # The session cookie is HttpOnly and SameSite=Strict; only the token's hash is stored.
    c = TestClient(s.app, follow_redirects=False)
    r = c.post("/login", data={"token": s.tokens["bob"], "csrf": CSRF.search(c.get("/login").text).group(1)})
    assert re.search(r"llmr_session=.*HttpOnly.*SameSite=strict", r.headers["set-cookie"], re.I)
    with s.engine.connect() as conn:
        assert s.tokens["bob"] not in json.dumps([list(map(str, r)) for r in conn.exec_driver_sql("SELECT * FROM users")])


def test_an_annotator_sees_and_changes_only_their_own_answers(tmp_path):
    s = Setup(tmp_path)
    other = store.create_project(s.engine, "other", "pairwise", "", 2, candidates_file(tmp_path / "o.jsonl", 3))
    carol = _login(s.app, store.add_annotator(s.engine, other, "carol"))
    item, r = s.answer("bob", "1")
    assert r.status_code == 303
    bob_row = s.rows()[0]
    assert s.clients["alice"].get("/annotate/edit").status_code == 404  # nothing of hers to edit; bob's is not shown
    page = s.clients["alice"].get("/annotate").text
    assert item == int(ITEM.search(page).group(1))  # bob's item comes next for alice (overlap), without his answer
    assert "current" not in page and 'aria-pressed' not in page
    # Posting "as bob" is still alice's answer; bob's stays as it was.
    r = s.clients["alice"].post("/annotate/answer", data={"csrf": CSRF.search(page).group(1), "item": item,
                                                          "choice": "2", "annotator": "bob", "annotator_id": bob_row["annotator_id"]})
    assert r.status_code == 303
    rows = {r["annotator_id"]: r for r in s.rows()}
    assert rows[bob_row["annotator_id"]] == bob_row and rows[s.ids["alice"]]["item_id"] == item
    # Another project's annotator cannot answer this project's items.
    csrf = CSRF.search(carol.get("/annotate").text).group(1)
    assert carol.post("/annotate/answer", data={"csrf": csrf, "item": item, "choice": "1"}).status_code == 404
    assert len(s.rows()) == 2


def test_model_output_guidelines_and_reasons_are_shown_as_text(tmp_path):
    s = Setup(tmp_path, payload=XSS)
    page = s.clients["alice"].get("/annotate").text
    assert "<script>window.pwned" not in page and "<img src=x" not in page and '" onmouseover="' not in page
    assert page.count("&lt;script&gt;window.pwned=1&lt;/script&gt;") == 4  # guidelines, prompt, two answers
    item = int(ITEM.search(page).group(1))
    s.clients["alice"].post("/annotate/skip", data={"csrf": CSRF.search(page).group(1), "item": item, "reason": XSS})
    dash = s.admin.get(f"/admin/projects/{s.pid}").text
    assert "<script>window.pwned" not in dash and "&lt;script&gt;window.pwned=1" in dash
    csrf = CSRF.search(dash).group(1)
    r = s.admin.post(f"/admin/projects/{s.pid}/annotators", data={"csrf": csrf, "name": "<b>x</b>"})
    assert r.status_code == 400 and "annotator name must be" in r.text


def test_answer_order_is_random_per_item_recorded_and_position_bias_reported(tmp_path):
    s = Setup(tmp_path, n=60)
    orders = [display_order(s.secret, s.ids["alice"], i, 2) for i in range(1, 61)]
    assert orders == [display_order(s.secret, s.ids["alice"], i, 2) for i in range(1, 61)]  # stable per visit
    assert 15 <= sum(o == [1, 0] for o in orders) <= 45  # both sides, about half each
    for _ in range(30):
        s.answer("alice", "1")  # always the answer shown first: maximal position bias
        s.answer("bob", "tie")
    for row in s.rows():
        shown = display_order(s.secret, row["annotator_id"], row["item_id"], 2)
        assert json.loads(row["shown"]) == shown  # the order shown is recorded with the answer
        if row["annotator_id"] == s.ids["alice"]:
            assert json.loads(row["value"]) == "AB"[shown[0]]  # "answer 1" means the response shown first
    bias = stats.position_bias(store.project(s.engine, s.pid), store.answers(s.engine, s.pid))
    assert bias["annotators"]["alice"]["first_share"] == 1.0 and bias["annotators"]["alice"]["p_value"] < 1e-6
    assert "bob" not in bias["annotators"]  # ties pick no side
    assert bias["overall"]["decisive"] == 30 and bias["overall"]["expected"] == 0.5
    assert "30 picks were the answer shown first" in s.admin.get(f"/admin/projects/{s.pid}").text


def _three_annotators_answer(s, n=20):
    rng = random.Random(0)
    for _ in range(n):
        for who in ("alice", "bob", "carl"):
            s.answer(who, rng.choice(["1", "1", "2", "tie", "both_bad"]))


def test_dashboard_kappa_and_export_equal_prefs_agreement(tmp_path):
    _check_dashboard_and_export(Setup(tmp_path, n=20, names=("alice", "bob", "carl"), overlap=3), tmp_path)


@pytest.mark.skipif(not PG, reason="set LLM_RECIPE_TEST_POSTGRES_URL=postgresql+psycopg://... (a database it may "
                    "empty) to run the app on PostgreSQL")
def test_the_same_on_postgresql(tmp_path):
    engine = create_engine(PG)
    metadata.drop_all(engine)
    engine.dispose()
    _check_dashboard_and_export(Setup(tmp_path, n=20, names=("alice", "bob", "carl"), overlap=3, db=PG), tmp_path)


def _check_dashboard_and_export(s, tmp_path):
    from llm_recipe.cli import app as cli

    _three_annotators_answer(s)
    files = {}
    for name in ("annotations.jsonl", "agreement.json", "pairs.jsonl"):
        r = s.admin.get(f"/admin/projects/{s.pid}/export/{name}")
        assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
        (tmp_path / f"web-{name}").write_bytes(files.setdefault(name, r.content))
    # `prefs agreement` on the exported annotations: the same report and byte-identical pairs.
    res = CliRunner().invoke(cli, ["prefs", "agreement", str(tmp_path / "web-annotations.jsonl"), "--report",
                                   str(tmp_path / "cli.json"), "--pairs", str(tmp_path / "cli-pairs.jsonl"),
                                   "--set", "prefs.agreement.min_agreement=0.6"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli-pairs.jsonl").read_bytes() == files["pairs.jsonl"] and files["pairs.jsonl"]
    cli_rep, web_rep = json.loads((tmp_path / "cli.json").read_text()), json.loads(files["agreement.json"])

    def same(rep):  # file:line locations name each side's own copy of annotations.jsonl
        return {k: [{**d, "where": d["where"].split(":")[-1]} for d in v] if k == "disagreements" else v
                for k, v in rep.items() if k != "read"}

    assert same(cli_rep) == same(web_rep) and web_rep["disagreements"][0]["where"].startswith("annotations.jsonl:")
    assert cli_rep["read"]["skipped"] == {} and "both_bad" in files["annotations.jsonl"].decode()  # every label read
    # The dashboard's live figures are that report's, computed from the same labels.
    items, _ = read_annotations([tmp_path / "web-annotations.jsonl"])
    rep = agreement_report(items, 0.6)
    assert rep["fleiss_kappa"] == web_rep["kappa"] and len(rep["annotators"]) == 3 and rep["items_rated"] == 20
    dash = s.admin.get(f"/admin/projects/{s.pid}").text
    assert f'id="kappa">{rep["kappa"]:.3f}<' in dash and f'id="band" class="band-{rep["band"]}"' in dash
    assert f'id="kept">{len(rep["kept_items"])}<' in dash
    # `llm-recipe annotate export` writes the same three files.
    s.engine.dispose()
    res = CliRunner().invoke(cli, ["annotate", "export", "--db", s.db, "--project", "p",
                                   "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert all((tmp_path / "out" / n).read_bytes() == files[n] for n in ("annotations.jsonl", "pairs.jsonl"))
    res = CliRunner().invoke(cli, ["annotate", "export", "--db", s.db, "--project", "nope",
                                   "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 2 and "no project named 'nope'" in res.output


def test_an_answer_is_committed_before_the_page_advances(tmp_path):
    s = Setup(tmp_path)
    client = TestClient(s.app, follow_redirects=False, raise_server_exceptions=False)
    client.cookies = s.clients["alice"].cookies
    page = client.get("/annotate").text
    item, csrf = ITEM.search(page).group(1), CSRF.search(page).group(1)

    def fail(conn):
        raise RuntimeError("disk full")

    event.listen(s.engine, "commit", fail)
    r = client.post("/annotate/answer", data={"csrf": csrf, "item": item, "choice": "1"})
    event.remove(s.engine, "commit", fail)
    assert r.status_code == 500 and s.rows() == []  # no commit: no answer, and no redirect to the next item
    # one line on a page with the security headers (#32: a bare 500 without them), the traceback to the log
    assert "could not handle this request (RuntimeError); nothing was stored" in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"] and "Traceback" not in r.text
    assert ITEM.search(client.get("/annotate").text).group(1) == item  # the same item again
    for choice in ("1", "1", "2"):  # a retry, a double click, a change of mind: still one stored answer
        assert client.post("/annotate/answer", data={"csrf": csrf, "item": item, "choice": choice}).status_code == 303
    (row,) = s.rows()
    assert json.loads(row["value"]) == MODES["pairwise"].parse("2", json.loads(row["shown"]))


def test_skip_with_a_reason_and_edit_the_last_answer(tmp_path):
    s = Setup(tmp_path, n=5)
    alice = s.clients["alice"]
    page = alice.get("/annotate").text
    first = int(ITEM.search(page).group(1))
    assert alice.post("/annotate/skip", data={"csrf": CSRF.search(page).group(1), "item": first, "reason": " "}
                      ).status_code == 400
    assert alice.post("/annotate/skip", data={"csrf": CSRF.search(page).group(1), "item": first,
                                              "reason": "cannot judge"}).status_code == 303
    assert 'id="done">0<' in alice.get("/annotate").text and "1 skipped" in alice.get("/annotate").text
    second, _ = s.answer("alice", "2")
    edit = alice.get("/annotate/edit").text
    assert int(ITEM.search(edit).group(1)) == second and 'value="2" data-key="2" class="current"' in edit
    alice.post("/annotate/answer", data={"csrf": CSRF.search(edit).group(1), "item": second, "choice": "tie"})
    rows = {r["item_id"]: r for r in s.rows()}
    assert rows[first]["skip_reason"] == "cannot judge" and rows[first]["value"] is None
    assert json.loads(rows[second]["value"]) == "tie" and len(rows) == 2
    assert "cannot judge" in s.admin.get(f"/admin/projects/{s.pid}").text


def test_ranking_and_scale_modes(tmp_path):
    r = Setup(tmp_path / "r", mode="ranking", n=4, k=3)
    page = r.clients["alice"].get("/annotate").text
    item, csrf = int(ITEM.search(page).group(1)), CSRF.search(page).group(1)
    for bad in ("1 2", "1 1 2", "1 2 4", "x"):
        assert r.clients["alice"].post("/annotate/answer", data={"csrf": csrf, "item": item, "choice": bad}
                                       ).status_code == 400
    assert r.clients["alice"].post("/annotate/answer", data={"csrf": csrf, "item": item, "choice": "3 1 2"}
                                   ).status_code == 303
    shown = display_order(r.secret, r.ids["alice"], item, 3)
    (row,) = r.rows()
    assert json.loads(row["value"]) == [shown[2], shown[0], shown[1]]
    recs = stats.annotation_records(store.project(r.engine, r.pid), store.answers(r.engine, r.pid))
    ext = recs[0]["item_id"].split("/")[0]
    best, mid, worst = json.loads(row["value"])
    want = {f"{ext}/{min(a, b)}-{max(a, b)}": "A" if a < b else "B" for a, b in ((best, mid), (best, worst), (mid, worst))}
    assert {x["item_id"]: x["label"] for x in recs} == want  # a ranking of 3 is its 3 pairs

    sc = Setup(tmp_path / "s", mode="scale", n=4)
    item, resp = sc.answer("alice", "2")  # answer 1 better
    assert resp.status_code == 303
    shown = display_order(sc.secret, sc.ids["alice"], item, 2)
    (row,) = sc.rows()
    assert json.loads(row["value"]) == (2 if shown == [0, 1] else 6)  # 1 = responses[0] much better
    (rec,) = stats.annotation_records(store.project(sc.engine, sc.pid), store.answers(sc.engine, sc.pid))
    assert rec["label"] == "AB"[shown[0]] and rec["grade"] == json.loads(row["value"])
    assert sc.answer("alice", "8")[1].status_code == 400


def test_guidelines_are_versioned_and_agreement_is_reported_per_version(tmp_path):
    s = Setup(tmp_path, n=8)
    for _ in range(2):
        s.answer("alice", "1")
        s.answer("bob", "1")
    csrf = CSRF.search(s.admin.get(f"/admin/projects/{s.pid}").text).group(1)
    assert s.admin.post(f"/admin/projects/{s.pid}/guidelines", data={"csrf": csrf, "text": "v2: be strict"}
                        ).status_code == 303
    assert "v2: be strict" in s.clients["alice"].get("/annotate").text
    for _ in range(2):
        s.answer("alice", "tie")
        s.answer("bob", "tie")
    versions = stats.by_guidelines_version(store.project(s.engine, s.pid),
                                           stats.annotation_records(store.project(s.engine, s.pid),
                                                                    store.answers(s.engine, s.pid)))
    assert [(v["version"], v["labels"], v["items_rated"]) for v in versions] == [(1, 4, 2), (2, 4, 2)]


def test_bad_input_files_and_forms_give_one_clear_line(tmp_path):
    s = Setup(tmp_path)
    csrf = CSRF.search(s.admin.get("/admin").text).group(1)
    form = {"csrf": csrf, "name": "new", "mode": "pairwise", "overlap": "2", "min_agreement": "0.75"}
    bad = b'{"prompt": "q", "responses": ["a", "b"]}\n{"prompt": "q2", "responses": ["only"]}\nnot json\n'
    r = s.admin.post("/admin/projects", data=form, files={"file": ("mine.jsonl", bad)})
    assert r.status_code == 303  # one good item; the bad lines are counted, not fatal
    made = store.project_by_name(s.engine, "new")
    assert store.item_counts(s.engine, made)["items"] == 1
    report = s.admin.get(f"/admin/projects/{made['id']}").text
    assert "kept 1, skipped 2" in report and "too_few_responses first at mine.jsonl:2" in report
    assert "invalid_json first at mine.jsonl:3" in report
    r = s.admin.post("/admin/projects", data={**form, "name": "empty"}, files={"file": ("mine.jsonl", b"not json\n")})
    assert r.status_code == 400 and "mine.jsonl: no usable items" in r.text and "mine.jsonl:1" in r.text
    assert "Traceback" not in r.text and str(tmp_path) not in r.text
    r = s.admin.post("/admin/projects", data={**form, "name": "txt"}, files={"file": ("notes.txt", b"hello\n")})
    assert r.status_code == 400 and "notes.txt: unknown record format" in r.text and "/tmp" not in r.text
    for field, value, msg, code in (("mode", "vote", "mode must be one of", 400), ("overlap", "1", "invalid overlap", 422),
                                    ("name", "a/b", "project name must be", 400)):
        r = s.admin.post("/admin/projects", data={**form, field: value}, files={"file": ("c.jsonl", bad)})
        assert r.status_code == code and msg in r.text, r.text  # 422: the form's schema; 400: the app's rules
    # A pairs file works too: one item per pair.
    pairs = b'{"prompt": "q", "chosen": "good", "rejected": "bad"}\n'
    assert s.admin.post("/admin/projects", data={**form, "name": "pairs"}, files={"file": ("p.jsonl", pairs)}
                        ).status_code == 303
    assert store.item_counts(s.engine, store.project_by_name(s.engine, "pairs"))["items"] == 1


def test_serve_binds_to_loopback_and_prints_the_admin_token_once(tmp_path, monkeypatch):
    import uvicorn

    from llm_recipe.cli import app as cli

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    db = str(tmp_path / "x.sqlite")
    first = CliRunner().invoke(cli, ["annotate", "serve", "--db", db])
    again = CliRunner().invoke(cli, ["annotate", "serve", "--db", db])
    assert first.exit_code == again.exit_code == 0, first.output
    assert calls[0]["host"] == "127.0.0.1" and calls[0]["port"] == 8000
    token = re.search(r"admin login token .*: (\S+)", first.output).group(1)
    assert "admin login token" not in again.output  # shown once
    assert store.user_of_token(create_app(db).state.site.engine, token)["role"] == "admin"
    for bad, why in (("nosuchdialect://x", "Can't load plugin"), (str(tmp_path / "x.sqlite" / "y.sqlite"), "")):
        res = CliRunner().invoke(cli, ["annotate", "serve", "--db", bad])
        assert res.exit_code == 2 and f"{bad}: cannot open the annotation database" in res.output, res.output
        assert why in res.output and "Traceback" not in res.output
    wide = CliRunner().invoke(cli, ["annotate", "serve", "--db", db, "--host", "0.0.0.0", "--new-admin-token"])
    assert "warning: listening on 0.0.0.0" in wide.output and calls[-1]["host"] == "0.0.0.0"
    assert store.user_of_token(create_app(db).state.site.engine, token) is None  # the old token stops working


@pytest.mark.parametrize("mode", ["pairwise", "scale", "ranking"])
def test_choice_round_trips_through_every_display_order(mode):
    m, n = MODES[mode], 3 if mode == "ranking" else 2
    for shown in itertools.permutations(range(n)):
        shown = list(shown)
        for choice in (["3 1 2", "1 2 3"] if mode == "ranking" else m.choices):
            assert m.choice_of(m.parse(choice, shown), shown) == choice
