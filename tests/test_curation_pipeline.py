"""Pipeline core and local executor: accounting, scoping, global steps, process pool, resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from llm_recipe.config.curate import CurateConfig
from llm_recipe.data.curate import fingerprint
from llm_recipe.data.executor import ResumeMismatch, run_local
from llm_recipe.data.pipeline import (
    Filter,
    GlobalStep,
    Mapper,
    PipelineError,
    Step,
    Tally,
    run_steps,
)
from llm_recipe.files import write_jsonl


def _docs(n, source="web", prefix="d"):
    return [{"id": f"{prefix}{i}", "text": f"{prefix} text number {i}", "source": source, "url": None, "meta": {}}
            for i in range(n)]


class DropOdd(Filter):
    name = "drop_odd"

    def reason(self, doc):
        return "odd" if int(doc["id"].lstrip("abcdefghijklmnopqrstuvwxyz")) % 2 else None


class Upper(Mapper):
    name = "upper"

    def apply(self, doc, tally):
        doc["text"] = doc["text"].upper()
        tally.modified("upper")


class LosesDocs(Step):
    name = "leaky"

    def process(self, batch, tally):
        return batch[:-1]  # drops one without reporting it


class ExactDedup(GlobalStep):
    """Keeps the first doc (in shard order) of each text: a minimal global step."""

    name = "exact_dedup"

    def observe(self, batch):
        return [(d["id"], d["text"]) for d in batch]

    def fit(self, partials):
        seen, self.drop_ids = set(), set()
        for part in partials:
            for doc_id, text in part:
                if text in seen:
                    self.drop_ids.add(doc_id)
                seen.add(text)
        self.fitted = True

    def process(self, batch, tally):
        kept = []
        for d in batch:
            if d["id"] in self.drop_ids:
                tally.drop(d, "duplicate")
            else:
                kept.append(d)
        return kept


class CrashOn(Mapper):
    name = "crash_on"

    def __init__(self, doc_id, **kw):
        super().__init__(**kw)
        self.doc_id = doc_id

    def apply(self, doc, tally):
        if doc["id"] == self.doc_id:
            raise RuntimeError("simulated crash")


def test_run_steps_counts_drops_and_modifications():
    res = run_steps([DropOdd(), Upper()], _docs(10), keep_dropped=True)
    assert [d["id"] for d in res.kept] == ["d0", "d2", "d4", "d6", "d8"]
    assert res.kept[0]["text"] == "D TEXT NUMBER 0"
    s = res.stats.to_dict()
    assert s["drop_odd"] == {"docs_in": 10, "docs_out": 5, "skipped": 0, "dropped": {"odd": 5}, "modified": {}}
    assert s["upper"]["modified"] == {"upper": 5}
    assert {d["id"] for d in res.dropped} == {"d1", "d3", "d5", "d7", "d9"}
    assert res.dropped[0]["drop"] == {"step": "drop_odd", "reason": "odd"}


def test_steps_without_their_hooks_cannot_be_built():
    class NoReason(Filter):
        name = "no_reason"

    class NoFit(GlobalStep):
        def observe(self, batch):
            return []

        def process(self, batch, tally):
            return batch

    for cls in (NoReason, NoFit):
        with pytest.raises(TypeError, match="abstract"):
            cls()


class Slow(Mapper):
    name = "slow"

    def apply(self, doc, tally):
        time.sleep(0.01)


@pytest.mark.slow
def test_per_step_seconds_are_measured_and_kept_out_of_the_counts(tmp_path):
    res = run_steps([DropOdd(), Slow()], _docs(6))
    assert res.stats["slow"].seconds >= 0.03 > res.stats["drop_odd"].seconds  # 3 docs reach `slow`
    assert "seconds" not in res.stats.to_dict()["slow"]  # counts are a function of the data alone
    shards = _write_shards(tmp_path)
    stats = run_local(shards, [DropOdd(), ExactDedup(), Slow()], tmp_path / "out", workers=2, progress=False)
    secs = stats["seconds_by_step"]
    assert list(secs) == list(stats["steps"]) and secs["slow"] >= 0.05  # 5 docs, over both workers
    assert secs["exact_dedup"] > 0  # observe + fit


def test_step_losing_docs_silently_is_an_error():
    with pytest.raises(PipelineError, match="leaky.*lost documents"):
        run_steps([LosesDocs()], _docs(3))


def test_source_scope_passes_other_sources_untouched_in_order():
    batch = _docs(4, "web", "w") + _docs(4, "code", "c")
    batch = [batch[i] for i in (0, 4, 1, 5, 2, 6, 3, 7)]  # interleaved
    res = run_steps([DropOdd(skip_sources=["code"]), Upper(sources=["code"])], batch)
    assert [d["id"] for d in res.kept] == ["w0", "c0", "c1", "w2", "c2", "c3"]
    assert all(d["text"].isupper() == (d["source"] == "code") for d in res.kept)
    st = res.stats.to_dict()
    assert st["drop_odd"]["skipped"] == 4 and st["drop_odd"]["dropped"] == {"odd": 2}
    assert st["upper"]["skipped"] == 2 and st["upper"]["modified"] == {"upper": 4}


def test_global_step_unfitted_raises():
    with pytest.raises(PipelineError, match="before fit"):
        ExactDedup()([], Tally("x", run_steps([], []).stats["x"], None))


def _write_shards(tmp_path):
    a = _docs(6, "web", "a")
    b = _docs(6, "wiki", "b")
    b[0]["text"] = a[2]["text"]  # cross-shard duplicate
    b[3]["text"] = a[4]["text"]
    write_jsonl(tmp_path / "in" / "a.jsonl", a)
    write_jsonl(tmp_path / "in" / "b.jsonl", b)
    return [tmp_path / "in" / "a.jsonl", tmp_path / "in" / "b.jsonl"]


@pytest.mark.slow
def test_local_executor_process_pool_with_global_step(tmp_path):
    shards = _write_shards(tmp_path)
    # drop_odd before the global step, upper after it: three segments of work
    steps = [DropOdd(), ExactDedup(), Upper()]
    stats = run_local(shards, steps, tmp_path / "out", workers=2, keep_dropped=True, progress=False)
    kept = [json.loads(line) for f in stats["outputs"] for line in Path(f).read_text(encoding="utf-8").splitlines()]
    # a0 a2 a4 survive drop_odd; b0 (= a2) and b2, b4 survive drop_odd; b0 is a dup of a2
    assert sorted(d["id"] for d in kept) == ["a0", "a2", "a4", "b2", "b4"]
    assert all(d["text"].isupper() for d in kept)
    st = stats["steps"]
    assert st["read"]["docs_in"] == 12 and st["drop_odd"]["dropped"] == {"odd": 6}
    assert st["exact_dedup"] == {"docs_in": 6, "docs_out": 5, "skipped": 0,
                                 "dropped": {"duplicate": 1}, "modified": {}}
    for s in st.values():
        assert s["docs_in"] == s["docs_out"] + sum(s["dropped"].values())
    assert stats["records_in"] == stats["docs_out"] + stats["dropped_total"]
    audit = [json.loads(line) for line in
             (tmp_path / "out" / "dropped" / "00001-b-seg1.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(d["id"], d["drop"]["reason"]) for d in audit] == [("b0", "duplicate")]


def test_resume_skips_finished_shards(tmp_path):
    shards = _write_shards(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_local(shards, [CrashOn("b1")], out, workers=1, fingerprint={"run": "f1"}, progress=False)
    marker = out / ".state" / "seg-0" / "done" / "00000-a.json"
    assert marker.exists() and not (out / ".state" / "seg-0" / "done" / "00001-b.json").exists()
    first_mtime = marker.stat().st_mtime_ns
    # same fingerprint: the crash is "fixed" (b1 no longer matches), shard a is not recomputed
    stats = run_local(shards, [CrashOn("nope", name="crash_on")], out, workers=1, fingerprint={"run": "f1"},
                      progress=False)
    assert marker.stat().st_mtime_ns == first_mtime
    assert stats["docs_out"] == 12 and stats["steps"]["crash_on"]["docs_in"] == 12
    with pytest.raises(ResumeMismatch, match=r"other settings \(run 'f1' -> 'f2'\)"):
        run_local(shards, [CrashOn("nope")], out, workers=1, fingerprint={"run": "f2"}, progress=False)
    stats = run_local(shards, [DropOdd()], out, workers=1, fingerprint={"run": "f2"}, resume=False, progress=False)
    assert stats["docs_out"] == 6


def test_resume_mismatch_names_the_changed_config_fields(tmp_path):
    shards = _write_shards(tmp_path)
    cfg = CurateConfig()
    run_local(shards, [DropOdd()], tmp_path / "out", workers=1, fingerprint=fingerprint(cfg, shards, [DropOdd()]),
              progress=False)
    changed = CurateConfig.model_validate({"min_length": {"min_chars": 5}, "dedup": {"fuzzy": {"threshold": 0.7}}})
    with pytest.raises(ResumeMismatch, match=r"\(dedup\.fuzzy\.threshold 0\.8 -> 0\.7, min_length\.min_chars 0 -> 5\)"):
        run_local(shards, [DropOdd()], tmp_path / "out", workers=1,
                  fingerprint=fingerprint(changed, shards, [DropOdd()]), progress=False)


def test_rerun_after_completion_with_global_step_recomputes_nothing(tmp_path):
    shards = _write_shards(tmp_path)
    steps = [DropOdd(), ExactDedup(), Upper()]
    first = run_local(shards, steps, tmp_path / "out", workers=1, fingerprint={"run": "g"}, progress=False)
    assert not (tmp_path / "out" / ".state" / "seg-0" / "data").exists()  # intermediates cleaned
    again = run_local(shards, [DropOdd(), ExactDedup(), Upper()], tmp_path / "out", workers=1,
                      fingerprint={"run": "g"}, progress=False)  # fresh, unfitted global step: no fit needed
    assert again == first
