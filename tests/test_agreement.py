import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.preference.agreement import (
    agreement_report,
    band,
    cohen_kappa,
    filtered_pairs,
    fleiss_kappa,
)
from llm_recipe.preference.human import read_annotations


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_equals_scikit_learn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    a = rng.choice(["A", "B", "tie"], size=200, p=[0.5, 0.35, 0.15])
    # The second annotator copies the first 60% of the time: kappa clearly above 0.
    b = np.where(rng.random(200) < 0.6, a, rng.choice(["A", "B", "tie"], size=200))
    ours = cohen_kappa(list(a), list(b))
    assert ours == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert 0.3 < ours < 0.9


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_kappa_equals_statsmodels_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    raters, items = 5, 60
    truth = rng.integers(0, 3, size=items)
    labels = np.where(rng.random((items, raters)) < 0.7, truth[:, None], rng.integers(0, 3, size=(items, raters)))
    table = np.stack([np.bincount(row, minlength=3) for row in labels])
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss_kappa(table, method="fleiss"), abs=1e-12)


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa = 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    p_bar = 3.780 / 10  # sum of P_i = 3.780 in the worked example
    p_e = 0.213
    assert fleiss_kappa(table) == pytest.approx((p_bar - p_e) / (1 - p_e), abs=2e-3)
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=1e-3)


def test_bands():
    assert [band(k) for k in (0.95, 0.81, 0.8, 0.7, 0.5, 0.4, 0.1, -0.2)] == [
        "excellent", "excellent", "usable", "usable", "review", "rewrite_guidelines", "rewrite_guidelines",
        "rewrite_guidelines"]


def _annotations(path):
    items = {  # item -> labels of ann1, ann2, ann3
        "i1": ("A", "A", "A"),
        "i2": ("B", "B", "A"),
        "i3": ("A", "B", "tie"),
        "i4": ("B", "B", "B"),
        "i5": ("tie", "tie", "A"),
    }
    lines = []
    for item, labels in items.items():
        for k, lab in enumerate(labels):
            rec = {"item_id": item, "annotator": f"ann{k + 1}", "label": lab}
            if k == 0:
                rec.update(prompt=f"question {item}", response_a=f"answer A of {item}", response_b=f"answer B of {item}")
            lines.append(json.dumps(rec))
    lines.append(json.dumps({"item_id": "i1", "annotator": "ann1", "label": "B"}))  # duplicate
    lines.append(json.dumps({"item_id": "i6", "annotator": "ann1", "label": "maybe"}))  # unknown label
    lines.append(json.dumps({"item_id": "i6", "label": "A"}))  # no annotator
    lines.append(json.dumps({"item_id": "i7", "annotator": "ann2", "label": "b_much_better"}))  # one rater only
    path.write_text("\n".join(lines) + "\n")
    return path


def test_annotation_import_report_disagreements_and_filter(tmp_path):
    f = _annotations(tmp_path / "ann.jsonl")
    items, log = read_annotations([f])
    assert log.skipped == {"duplicate_annotation": 1, "unknown_label": 1, "missing_field": 1}
    assert log.where["duplicate_annotation"][0].startswith(f"{f}:16")
    assert items["i7"].labels == {"ann2": "B"}  # graded label counts as B

    rep = agreement_report(items, min_agreement=0.6)
    assert rep["annotators"] == ["ann1", "ann2", "ann3"] and rep["items_rated"] == 5
    assert "i6" not in items  # no valid judgement at all
    assert rep["items_skipped_too_few_annotators"] == 1  # i7: one rater
    table = np.array([[3, 0, 0], [1, 2, 0], [1, 1, 1], [0, 3, 0], [1, 0, 2]])  # A, B, tie counts
    assert rep["fleiss_kappa"] == pytest.approx(sm_fleiss_kappa(table, method="fleiss"))
    assert rep["kappa"] == rep["fleiss_kappa"] and rep["band"] == band(rep["fleiss_kappa"])
    # Raw agreement: agreeing rater pairs / all rater pairs = (3 + 1 + 0 + 3 + 1) / 15.
    assert rep["raw_agreement"] == pytest.approx(8 / 15)
    pair_12 = next(p for p in rep["cohen_kappa_pairwise"] if p["annotators"] == ["ann1", "ann2"])
    assert pair_12["cohen_kappa"] == pytest.approx(cohen_kappa_score(["A", "B", "A", "B", "tie"],
                                                                     ["A", "B", "B", "B", "tie"]))
    dis = {d["item_id"]: d for d in rep["disagreements"]}
    assert set(dis) == {"i2", "i3", "i5"}
    assert dis["i3"]["majority"] is None and dis["i2"]["agreement"] == pytest.approx(2 / 3)
    # Kept: unanimous or 2/3 items whose majority prefers a response (i5's majority is a tie).
    assert sorted(rep["kept_items"]) == ["i1", "i2", "i4"]
    assert sorted(agreement_report(items, min_agreement=0.9)["kept_items"]) == ["i1", "i4"]
    pairs, missing = filtered_pairs(items, rep["kept_items"])
    assert missing == 0
    by_item = {p.meta["item_id"]: p for p in pairs}
    assert by_item["i2"].chosen == "answer B of i2" and by_item["i1"].chosen == "answer A of i1"


def test_two_annotators_use_cohen_and_cli_writes_report_and_pairs(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.choice(["A", "B"], size=40)
    b = np.where(rng.random(40) < 0.8, a, rng.choice(["A", "B"], size=40))
    lines = []
    for i in range(40):
        for ann, lab in (("x", a[i]), ("y", b[i])):
            lines.append(json.dumps({"item_id": i, "annotator": ann, "label": str(lab), "prompt": f"q{i}",
                                     "response_a": f"a{i}", "response_b": f"b{i}"}))
    f = tmp_path / "two.jsonl"
    f.write_text("\n".join(lines) + "\n")
    report, pairs = tmp_path / "agreement.json", tmp_path / "kept.jsonl"
    res = CliRunner().invoke(app, ["prefs", "agreement", str(f), "--report", str(report), "--pairs", str(pairs),
                                   "--set", "prefs.agreement.min_agreement=1.0"])
    assert res.exit_code == 0, res.output
    rep = json.loads(report.read_text())
    assert rep["kappa"] == pytest.approx(cohen_kappa_score(a, b)) and rep["fleiss_kappa"] is not None
    agree = int(np.sum(a == b))
    assert rep["raw_agreement"] == pytest.approx(agree / 40) and len(rep["disagreements"]) == 40 - agree
    kept = [json.loads(x) for x in pairs.read_text().splitlines()]
    assert len(kept) == agree == rep["filtered_pairs"]
    assert all(k["chosen"] == (f"a{k['meta']['item_id']}" if a[int(k["meta"]["item_id"])] == "A"
                               else f"b{k['meta']['item_id']}") for k in kept)
