"""The annotation app in a real browser (Debian's headless Chromium through Playwright), served by
`llm-recipe annotate serve`: the admin logs in with the printed token, creates a project from an
uploaded candidates file and adds annotators; an annotator answers 10 items by keyboard; a reload
shows them stored; model output holding <script> and attribute injections is shown as text and
never runs; the dashboard reports agreement and the export downloads. Screenshots are kept in
test-artifacts/ (annotate.png, annotate-dashboard.png).
"""

import json
import os
import re
from pathlib import Path

import pytest
from annotate_helpers import (
    CSRF,
    ITEM,
    XSS,
    Server,
    candidates_file,
    login,
    make_project,
    stored_answers,
)

from llm_recipe.annotate import store
from llm_recipe.annotate.auth import display_order
from llm_recipe.annotate.db import open_db, server_secret

pytestmark = pytest.mark.slow  # trains or drives real processes for a minute or more

ARTIFACTS = Path(os.environ.get("LLM_RECIPE_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
KEYS = ["1", "2", "3", "1", "2", "4", "1", "1", "2", "3"]


def _page(browser, seen: dict):
    # The page's CSP forbids eval, so waits use locators (Playwright's string predicates are eval).
    page = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True).new_page()
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: seen["requests"].append(r.url))
    return page


def _login(page, base: str, token: str) -> None:
    page.goto(base + "/login")
    page.fill("#token", token)
    page.press("#token", "Enter")
    page.wait_for_load_state("load")


def test_login_annotate_by_keyboard_reload_and_export(tmp_path, browser):
    cands = candidates_file(tmp_path / "cands.jsonl", 12, payload=XSS)
    seen = {"errors": [], "dialogs": [], "requests": []}
    with Server(tmp_path / "annotations.sqlite", cli=True) as server:
        admin_token = re.search(r"admin login token .*: (\S+)", server.output).group(1)
        admin = _page(browser, seen)
        _login(admin, server.base, admin_token)
        assert admin.url.endswith("/admin")
        admin.fill("input[name=name]", "helpfulness")
        admin.set_input_files("input[name=file]", str(cands))
        admin.select_option("select[name=mode]", "pairwise")
        admin.fill("textarea[name=guidelines]", "Prefer the answer that is correct, then the shorter one.")
        admin.click("#new-project button[type=submit]")
        admin.wait_for_url(re.compile(r"/admin/projects/\d+$"))
        dashboard = admin.url
        tokens = {}
        for name in ("alice", "bob"):
            admin.fill("#add-annotator input[name=name]", name)
            admin.click("#add-annotator button[type=submit]")
            tokens[name] = admin.locator("#new-token .token").inner_text().strip()

        from playwright.sync_api import expect

        page = _page(browser, seen)
        _login(page, server.base, tokens["alice"])
        assert page.url.endswith("/annotate")
        assert "Prefer the answer that is correct" in page.locator("#guidelines").inner_text()
        # Model output with markup is text: the payload reads back verbatim and nothing of it ran.
        assert XSS in page.locator("#prompt").inner_text()
        assert all(XSS in page.locator(f"#answer-{n}").inner_text() for n in (1, 2))
        assert page.eval_on_selector_all("img[src='x'], main script", "els => els.length") == 0
        seen_items = []
        for n, key in enumerate(KEYS, start=1):
            page.wait_for_load_state("load")  # the shortcuts' script runs once the page has loaded
            seen_items.append(page.locator("#item-id").inner_text())
            page.keyboard.press(key)
            expect(page.locator("#done")).to_have_text(str(n))  # stored, and the next item shown
        assert len(set(seen_items)) == 10
        page.reload()
        assert page.locator("#done").inner_text() == "10"
        assert page.evaluate("window.pwned") is None and seen["dialogs"] == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "annotate.png"), full_page=True)
        assert (ARTIFACTS / "annotate.png").stat().st_size > 10_000
        # "e" opens the last answer, its choice marked; answering again edits it (still 10 answered).
        page.wait_for_load_state("load")
        page.keyboard.press("e")
        page.wait_for_url(re.compile(r"/annotate/edit$"))
        page.wait_for_load_state("load")
        assert page.locator("#item-id").inner_text() == seen_items[-1]
        assert page.locator("button.current").get_attribute("data-key") == KEYS[-1]
        page.keyboard.press("1")
        page.wait_for_url(re.compile(r"/annotate$"))
        assert page.locator("#done").inner_text() == "10"

        bob = login(server.base, tokens["bob"])  # a second annotator, over plain HTTP, answers the same items
        for _ in range(10):
            page_html = bob.get("/annotate").text
            bob.post("/annotate/answer", data={"csrf": CSRF.search(page_html).group(1),
                                               "item": ITEM.search(page_html).group(1), "choice": "1"})
        bob.close()

        admin.goto(dashboard)
        assert admin.locator("#complete").inner_text() == "10"
        assert re.fullmatch(r"-?\d\.\d{3}", admin.locator("#kappa").inner_text())
        assert "picks were the answer shown first" in admin.locator("#position-bias").inner_text()
        admin.screenshot(path=str(ARTIFACTS / "annotate-dashboard.png"), full_page=True)
        files = {}
        for name in ("annotations.jsonl", "pairs.jsonl"):
            with admin.expect_download() as dl:
                admin.click(f"#exports a[href$='/{name}']")
            files[name] = Path(dl.value.path()).read_text(encoding="utf-8").splitlines()
        assert len(files["annotations.jsonl"]) == 20
        pairs = [json.loads(x) for x in files["pairs.jsonl"]]
        assert len(pairs) == int(admin.locator("#kept").inner_text())
        assert all(XSS in p["chosen"] and p["meta"]["annotators"] == 2 for p in pairs)
    assert seen["errors"] == [], seen["errors"]  # no CSP violation, no script error
    assert all(u.startswith(server.base) for u in seen["requests"])


def test_ranking_by_keyboard(tmp_path, browser):
    from playwright.sync_api import expect

    db = tmp_path / "rank.sqlite"
    project, tokens = make_project(db, 3, ["rita"], mode="ranking", k=3)
    seen = {"errors": [], "dialogs": [], "requests": []}
    with Server(db) as server:
        page = _page(browser, seen)
        _login(page, server.base, tokens["rita"])
        page.wait_for_load_state("load")
        item = int(page.locator("input[name=item]").first.get_attribute("value"))
        for key in ("3", "1", "Backspace", "2", "3", "1"):  # a slip, cleared, then: answer 2, 3, 1
            page.keyboard.press(key)
        expect(page.locator("#order")).to_have_value("2 3 1")
        page.keyboard.press("Enter")
        expect(page.locator("#done")).to_have_text("1")
    ((item_id, _, value),) = stored_answers(db)
    engine = open_db(str(db))
    shown = display_order(server_secret(engine), store.annotators(engine, project["id"])[0]["id"], item, 3)
    engine.dispose()
    assert item_id == item and json.loads(value) == [shown[1], shown[2], shown[0]]
    assert seen["errors"] == [] and seen["dialogs"] == []
