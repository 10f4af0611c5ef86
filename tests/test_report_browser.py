"""The run report in a real browser: Debian's headless Chromium, driven by Playwright.

Every section and image is there and rendered, nothing is fetched from the network, no console
error occurs, the evaluation table shows the report.json figures, and model output is shown as
text (a `<script>` in an answer does not run). A full-page screenshot is kept as a test artifact
(test-artifacts/report.png, or $LLM_RECIPE_TEST_ARTIFACTS).
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.report.html import SECTIONS

ARTIFACTS = Path(os.environ.get("LLM_RECIPE_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))


def _open(browser, html: Path):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    seen = {"errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    return page, seen


@pytest.mark.slow
def test_report_renders_every_section_and_image_without_errors(tiny_run, browser):
    res = CliRunner().invoke(app, ["report", str(tiny_run)])
    assert res.exit_code == 0, res.output
    html = tiny_run / "report.html"
    page, seen = _open(browser, html)
    assert page.eval_on_selector_all("section", "els => els.map(e => e.id)") == list(SECTIONS)
    for s in SECTIONS:
        assert page.locator(f"#{s}").inner_text().strip(), s
    imgs = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
    # curation funnel, 9 training curves (pretrain, SFT, RM x2, DPO x2, PPO x3), 4 evaluation plots
    assert len(imgs) == 16 and all(done and width > 0 for _, done, width in imgs), imgs
    assert {alt for alt, _, _ in imgs} >= {"reward vs KL", "helpful / harmless", "win rates",
                                           "safety failures by category", "documents dropped by curation step"}
    assert seen["errors"] == [] and all(u.startswith(("file:", "data:")) for u in seen["requests"]), seen
    # the evaluation table shows the figures of eval/report.json
    rep = json.loads((tiny_run / "eval" / "report.json").read_text())
    rows = page.locator("#evaluation table tr").all_inner_texts()
    for name in rep["order"]:
        row = next(r for r in rows if r.split("\t")[0] == name)
        w = rep["models"][name].get("win_rate_rm", {})
        if "win_rate" in w:
            assert f"{100 * w['win_rate']:.0f}% [" in row, (name, row)
        assert f"{100 * rep['models'][name]['safety']['refusal_rate']:.0f}%" in row
    assert "not run: no reference model" in page.locator("#evaluation").inner_text()
    assert "not run: this run holds no annotator agreement report" in page.locator("#agreement").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


@pytest.mark.slow
def test_model_output_is_shown_as_text_and_agreement_is_reported(tiny_run, tmp_path, browser):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "model", "reference"))
    ann = tmp_path / "ann.jsonl"
    ann.write_text("".join(json.dumps({"item_id": i, "annotator": a, "label": lab}) + "\n"
                           for i, labs in enumerate([("A", "A"), ("B", "B"), ("A", "B"), ("B", "B")])
                           for a, lab in zip(("x", "y"), labs, strict=True)), encoding="utf-8")
    res = CliRunner().invoke(app, ["prefs", "agreement", str(ann), "--report", str(run / "prefs" / "agreement.json")])
    assert res.exit_code == 0, res.output
    kappa = json.loads((run / "prefs" / "agreement.json").read_text())["kappa"]
    answers = run / "eval" / "answers.jsonl"
    recs = [json.loads(ln) for ln in answers.read_text(encoding="utf-8").splitlines()]
    payload = "<script>alert('x')</script><img src=x onerror=\"alert('y')\">\" onmouseover=\"alert('z')"
    recs[0]["answer"] = payload
    answers.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0
    page, seen = _open(browser, run / "report.html")
    assert page.eval_on_selector_all("script", "els => els.length") == 0
    assert page.eval_on_selector_all("img[src='x']", "els => els.length") == 0
    assert payload in page.locator("#answers").inner_text()
    assert seen["dialogs"] == [] and seen["errors"] == []
    row = page.locator("#agreement table tr").all_inner_texts()[1].split("\t")
    assert row[:3] == ["prefs/agreement.json", "2", "4"] and row[4] == f"{kappa:.4g}"
