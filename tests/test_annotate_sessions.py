"""The annotation app's sessions and ids at the edge (#32 items 6, 7).

Sessions are separate from login tokens: a login makes a new random session (stored hashed, with an
expiry), logout ends it on the server, the admin can revoke or reissue an annotator's token (the old
token and its sessions stop working at once), cookies are HttpOnly, SameSite=Strict and Secure over
TLS (served by uvicorn itself, or behind a proxy that is trusted to say so). Integer ids that no
database can hold, negative or not numbers are 404 or 422 with the security headers, on a
keep-alive connection that stays open; a real server process for what depends on the server."""

import hashlib
import re
import shutil
import subprocess
import time

import httpx
import pytest
from annotate_helpers import CSRF, ITEM, Server, candidates_file, login, make_project
from fastapi.testclient import TestClient

from llm_recipe.annotate import store
from llm_recipe.annotate.app import create_app
from llm_recipe.annotate.auth import COOKIE
from llm_recipe.annotate.db import sessions

HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options", "cache-control")


def _login(app, token: str, client: TestClient | None = None):
    c = client or TestClient(app, follow_redirects=False)
    r = c.post("/login", data={"token": token, "csrf": CSRF.search(c.get("/login").text).group(1)})
    return c, r


def _session_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sessions.select()).mappings()]


@pytest.fixture
def site(tmp_path):
    app = create_app(str(tmp_path / "s.sqlite"), session_s=3600)
    engine = app.state.site.engine
    pid = store.create_project(engine, "p", "pairwise", "g", 2, candidates_file(tmp_path / "c.jsonl", 6))
    tokens = {name: store.add_annotator(engine, pid, name) for name in ("alice", "bob")}
    return app, engine, pid, tokens, store.admin_token(engine)


def _copy(app, client) -> TestClient:
    other = TestClient(app, follow_redirects=False)
    other.cookies.set(COOKIE, client.cookies[COOKIE])
    return other


def test_login_makes_a_new_hashed_session_rotated_every_time_and_logout_ends_it(site):
    app, engine, _, tokens, _ = site
    alice, r = _login(app, tokens["alice"])
    assert r.status_code == 303
    first = alice.cookies[COOKIE]
    assert first != tokens["alice"] and len(first) >= 40  # the cookie is not the login token
    assert re.search(r"llmr_session=.*HttpOnly.*Max-Age=3600.*SameSite=strict", r.headers["set-cookie"], re.I)
    assert "secure" not in r.headers["set-cookie"].lower()  # plain HTTP, no proxy trusted
    (row,) = _session_rows(engine)
    assert row["id_hash"] == hashlib.sha256(first.encode()).hexdigest() and first not in str(row)
    assert 3599 < row["expires_at"] - row["created_at"] <= 3600
    stolen = _copy(app, alice)  # someone copied the cookie before the next login
    _login(app, tokens["alice"], alice)  # logging in again: a new session; the browser's old one ends
    assert alice.cookies[COOKIE] != first and alice.get("/annotate").status_code == 200
    assert stolen.get("/annotate").headers["location"] == "/login"
    assert len(_session_rows(engine)) == 1
    # logout ends the session on the server: a copy of the cookie stops working too
    copy = _copy(app, alice)
    assert copy.get("/annotate").status_code == 200
    csrf = CSRF.search(alice.get("/annotate").text).group(1)
    assert alice.post("/logout", data={"csrf": csrf}).status_code == 303
    assert copy.get("/annotate").headers["location"] == "/login" and _session_rows(engine) == []


def test_a_session_expires(tmp_path):
    app = create_app(str(tmp_path / "e.sqlite"), session_s=1.0)
    engine = app.state.site.engine
    pid = store.create_project(engine, "p", "pairwise", "g", 2, candidates_file(tmp_path / "c.jsonl", 3))
    alice, _ = _login(app, store.add_annotator(engine, pid, "alice"))
    assert alice.get("/annotate").status_code == 200
    time.sleep(1.1)
    assert alice.get("/annotate").headers["location"] == "/login"


def test_admin_revokes_and_reissues_a_token_and_its_sessions_stop_at_once(site):
    app, engine, pid, tokens, admin_token = site
    admin, _ = _login(app, admin_token)
    alice, _ = _login(app, tokens["alice"])
    bob, _ = _login(app, tokens["bob"])
    ids = {a["name"]: a["id"] for a in store.annotators(engine, pid)}
    csrf = CSRF.search(admin.get(f"/admin/projects/{pid}").text).group(1)
    # an annotator cannot revoke anyone; the admin's CSRF token is needed
    alice_csrf = CSRF.search(alice.get("/annotate").text).group(1)
    assert alice.post(f"/admin/projects/{pid}/annotators/{ids['bob']}/revoke",
                      data={"csrf": alice_csrf}).status_code == 403
    assert admin.post(f"/admin/projects/{pid}/annotators/{ids['bob']}/revoke",
                      data={"csrf": alice_csrf}).status_code == 403
    r = admin.post(f"/admin/projects/{pid}/annotators/{ids['alice']}/revoke", data={"csrf": csrf})
    assert r.status_code == 303
    assert alice.get("/annotate").headers["location"] == "/login"  # her open session ends now
    assert _login(app, tokens["alice"])[1].status_code == 401  # and the token no longer logs in
    assert bob.get("/annotate").status_code == 200  # nobody else is affected
    dash = admin.get(f"/admin/projects/{pid}").text
    assert re.search(r"<td>alice</td>.*?revoked", dash, re.S)
    # reissue: a new token shown once; the old one and its sessions stop working
    page = admin.post(f"/admin/projects/{pid}/annotators/{ids['bob']}/token", data={"csrf": csrf}).text
    new = re.search(r'<span class="token">([^<]+)</span>', page).group(1)
    assert bob.get("/annotate").headers["location"] == "/login"
    assert _login(app, tokens["bob"])[1].status_code == 401 and _login(app, new)[1].status_code == 303
    assert admin.post(f"/admin/projects/{pid}/annotators/999/token", data={"csrf": csrf}).status_code == 404
    # a new admin token (serve --new-admin-token) ends the admin's sessions too
    store.admin_token(engine, renew=True)
    assert admin.get("/admin").headers["location"] == "/login"


def test_cookies_are_secure_when_asked_to_be_or_over_https(tmp_path):
    flagged = create_app(str(tmp_path / "x.sqlite"), secure_cookies=True)  # TLS ends at an untrusted proxy
    cookie = TestClient(flagged).get("/login").headers["set-cookie"].lower()
    assert cookie.startswith("llmr_login=") and "; secure" in cookie and "httponly" in cookie
    app = create_app(str(tmp_path / "x.sqlite"))
    _, r = _login(app, store.admin_token(app.state.site.engine), TestClient(app, base_url="https://testserver",
                                                                              follow_redirects=False))
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith("llmr_session=") and "; secure" in cookie and "samesite=strict" in cookie


def _self_signed(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: no certificate for the TLS server")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


def _login_cookies(base: str, token: str, headers: dict | None = None) -> tuple[str, str]:
    """The Set-Cookie headers of the login page and of a login, as a browser's cookies would go back
    (sent by hand: a Secure cookie is not sent back over plain HTTP, which a proxy in front would speak)."""
    page = httpx.get(base + "/login", headers=headers, verify=False)
    pre = page.cookies["llmr_login"]
    r = httpx.post(base + "/login", data={"token": token, "csrf": CSRF.search(page.text).group(1)},
                   headers={**(headers or {}), "Cookie": f"llmr_login={pre}"}, verify=False)
    assert r.status_code == 303, r.text
    return page.headers["set-cookie"].lower(), r.headers["set-cookie"].lower()


FORWARDED = {"X-Forwarded-Proto": "https"}


def test_secure_cookies_over_tls_and_behind_a_trusted_proxy(tmp_path):
    """A real server each way: HTTPS itself, and plain HTTP behind a proxy whose address is trusted
    (its X-Forwarded-Proto counts; the same header from anyone else does not: the next test)."""
    cert, key = _self_signed(tmp_path)
    db = tmp_path / "tls.sqlite"
    _, tokens = make_project(db, 3, ["alice"])
    with Server(db, ssl_certfile=cert, ssl_keyfile=key) as server:
        assert server.base.startswith("https://")
        assert all("; secure" in c for c in _login_cookies(server.base, tokens["alice"]))
    with Server(db, trust_proxy="127.0.0.1") as server:
        assert all("; secure" in c for c in _login_cookies(server.base, tokens["alice"], FORWARDED))
        assert not any("; secure" in c for c in _login_cookies(server.base, tokens["alice"]))


def test_ids_out_of_range_negative_or_not_numbers_are_4xx_on_a_kept_connection(tmp_path):
    """#32: item=99999999999999999999 was a bare 500 (OverflowError) without the security headers, and
    the keep-alive connection was dropped."""
    db = tmp_path / "ids.sqlite"
    project, tokens = make_project(db, 3, ["alice"])
    from llm_recipe.annotate.db import open_db

    engine = open_db(str(db))
    admin_token = store.admin_token(engine)
    engine.dispose()
    pid = project["id"]
    with Server(db) as server:
        alice, admin = login(server.base, tokens["alice"]), login(server.base, admin_token)
        page = alice.get("/annotate").text
        csrf, item = CSRF.search(page).group(1), ITEM.search(page).group(1)
        admin_csrf = CSRF.search(admin.get("/admin").text).group(1)
        port = {}

        def check(client, method, path, expected, **kw):
            r = client.request(method, path, **kw)
            assert r.status_code in expected, (path, r.status_code, r.text[:300])
            assert all(h in r.headers for h in HEADERS) and r.headers.get("connection") != "close", r.headers
            assert "Traceback" not in r.text and "Internal Server Error" not in r.text
            here = r.extensions["network_stream"].get_extra_info("client_addr")
            assert port.setdefault(id(client), here) == here  # the same TCP connection as every request before
            return r

        for bad in ("99999999999999999999", "2147483648", "-1", "0", "abc", "1e3", ""):
            check(alice, "POST", "/annotate/answer", (422,), data={"csrf": csrf, "item": bad, "choice": "1"})
            check(alice, "POST", "/annotate/skip", (422,), data={"csrf": csrf, "item": bad, "reason": "x"})
        for bad in ("99999999999999999999999", "-1", "0", "abc", "2147483648"):
            check(admin, "GET", f"/admin/projects/{bad}", (404,))
            check(admin, "GET", f"/admin/projects/{bad}/export/pairs.jsonl", (404,))
            check(admin, "POST", f"/admin/projects/{bad}/guidelines", (404,), data={"csrf": admin_csrf, "text": "x"})
            check(admin, "POST", f"/admin/projects/{pid}/annotators/{bad}/revoke", (404,), data={"csrf": admin_csrf})
        check(admin, "GET", "/admin/projects/2147483647", (404,))  # the largest id: in range, no such project
        check(alice, "POST", "/annotate/answer", (404,), data={"csrf": csrf, "item": "2147483647", "choice": "1"})
        r = check(alice, "POST", "/annotate/answer", (303,), data={"csrf": csrf, "item": item, "choice": "1"})
        assert r.headers["location"] == "/annotate"  # the connection still serves real work
        alice.close()
        admin.close()
        # no proxy is trusted here: X-Forwarded-Proto from a client does not make cookies Secure
        assert not any("; secure" in c for c in _login_cookies(server.base, tokens["alice"], FORWARDED))
