"""End to end on the noisy corpus: per-noise-type recall, clean-doc precision, audit stats.

The corpus is the bundled sample corpus with 11 labelled noise types injected (see
`llm_recipe.demo.noisy_corpus`); curation runs with the bundled `curate` recipe section.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from llm_recipe.config import load_config
from llm_recipe.data.curate import curate
from llm_recipe.data.normalize import Normalize
from llm_recipe.data.readers import ShardReader
from llm_recipe.demo.noisy_corpus import DROP_TYPES, NOISE_TYPES, generate_noisy_corpus, load_labels

PER_TYPE = 25  # 11 types x 25 = 275 noisy docs among 750


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("noisy")
    corpus = generate_noisy_corpus(tmp / "corpus", docs_per_source=150, per_type=PER_TYPE, seed=0)
    cfg = load_config("curate").curate
    cfg.executor.workers = 2
    cfg.executor.progress = False
    cfg.mixing = None
    res = curate(cfg, tmp / "out", inputs=[corpus / "shards"], seed=0)
    kept = {d["id"]: d for f in res.files for d in ShardReader().read(f)}
    dropped = {}
    for f in sorted((tmp / "out" / "dropped").iterdir()):
        for line in f.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            dropped[rec["id"]] = rec
    originals = {d["id"]: d for f in sorted((corpus / "shards").iterdir()) for d in ShardReader().read(f)}
    return res, load_labels(corpus), kept, dropped, originals


@pytest.mark.slow
def test_every_noise_type_is_handled_with_recall_at_least_095(run):
    res, labels, kept, dropped, _ = run
    norm = Normalize()
    by_type: dict[str, list[bool]] = defaultdict(list)
    for doc_id, lab in labels.items():
        kind = lab["noise"]
        if lab["action"] == "drop":
            ok = doc_id in dropped
        elif kind == "pii":
            text = kept[doc_id]["text"] if doc_id in kept else None
            ok = text is not None and all(v not in text and f"<{t}>" in text for t, v in lab["pii"])
        else:  # repaired: exactly the normalized original text
            ok = doc_id in kept and kept[doc_id]["text"] == norm.normalize(lab["original"])
        by_type[kind].append(ok)
    assert set(by_type) == set(NOISE_TYPES)
    recall = {k: sum(v) / len(v) for k, v in by_type.items()}
    assert all(len(v) == PER_TYPE for v in by_type.values())
    assert min(recall.values()) >= 0.95, recall


def test_clean_docs_are_kept_and_filters_are_precise(run):
    res, labels, kept, dropped, originals = run
    clean = [i for i in originals if i not in labels]
    assert len(clean) == 750 - 11 * PER_TYPE
    clean_kept = sum(i in kept for i in clean) / len(clean)
    assert clean_kept >= 0.95
    # precision of what is kept: clean or correctly repaired docs, not surviving drop-type noise
    noisy_kept = [i for i in kept if labels.get(i, {}).get("action") == "drop"]
    assert 1 - len(noisy_kept) / len(kept) >= 0.95
    # per filter: of the docs it removed, the share that really was drop-type noise
    per_step = defaultdict(Counter)
    for doc_id, rec in dropped.items():
        per_step[rec["drop"]["step"]][labels.get(doc_id, {}).get("action") == "drop"] += 1
    precision = {s: c[True] / (c[True] + c[False]) for s, c in per_step.items()}
    assert {"blocklist", "language", "min_length", "short_lines", "char_ratios", "gopher_repetition"} <= set(
        precision)
    assert min(precision.values()) >= 0.95, precision
    # PII redaction touches no clean doc
    assert not [i for i in clean if i in kept and "<" in kept[i]["text"] and "<" not in originals[i]["text"]]


def test_stats_add_up_and_audit_lists_every_drop(run):
    res, labels, kept, dropped, originals = run
    s = res.stats
    for name, st in s["steps"].items():
        assert st["docs_in"] == st["docs_out"] + sum(st["dropped"].values()), name
    assert s["records_in"] == len(originals) == s["docs_out"] + s["dropped_total"]
    assert s["docs_out"] == len(kept) and s["dropped_total"] == len(dropped)
    audited = Counter((rec["drop"]["step"], rec["drop"]["reason"]) for rec in dropped.values())
    counted = Counter({(name, r): n for name, st in s["steps"].items() for r, n in st["dropped"].items()})
    assert audited == counted  # the dropped/ side output holds exactly what stats.json counts
    # PII counts per type in stats equal the injected values that were redacted
    injected = Counter(t for lab in labels.values() if lab["noise"] == "pii" for t, _ in lab["pii"])
    pii = s["steps"]["pii"]["modified"]
    assert {t: pii.get(t, 0) for t in injected} == dict(injected)
    assert s["steps"]["normalize"]["modified"]["mojibake"] >= PER_TYPE
    assert s["skipped_steps"] in ([], [{"step": "ner", "reason": s["skipped_steps"][0]["reason"]}])
    assert set(DROP_TYPES) <= {labels[i]["noise"] for i in dropped if i in labels}
