"""Ray Data executor: same kept ids, same per-step stats and bad-input audit as the local executor,
for a pipeline with exact, fuzzy and semantic dedup plus a quality filter. Runs a local Ray with
2 CPUs. Ray is in the `test` extra, so this is not skipped when Ray is missing: it fails."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from llm_recipe.data.dedup.steps import ExactDedupStep, FuzzyDedupStep, SemanticDedupStep
from llm_recipe.data.executor import ResumeMismatch, run_local
from llm_recipe.data.pipeline import Step
from llm_recipe.data.quality.steps import HarmfulFilter, train_harmful_classifier
from llm_recipe.data.ray_executor import run_ray
from llm_recipe.demo.dedup_corpus import near_duplicate_corpus, paraphrase_corpus
from llm_recipe.files import write_jsonl

pytestmark = pytest.mark.slow  # trains or drives real processes for a minute or more


def _kept(out: Path) -> list[str]:
    ids = []
    for p in sorted((out / "data").glob("*.jsonl")):
        ids += [json.loads(line)["id"] for line in p.read_text(encoding="utf-8").splitlines()]
    return ids


def test_ray_and_local_executors_keep_the_same_documents(tmp_path):
    near = near_duplicate_corpus(500, seed=8)
    para = paraphrase_corpus(20, 40, seed=2)
    docs = [{"id": f"n{i}", "text": t, "source": "web"} for i, t in enumerate(near.texts)]
    docs += [{"id": f"p{i}", "text": t, "source": "books"} for i, t in enumerate(para.texts)]
    docs += [{**d, "id": d["id"] + "-copy"} for d in docs[:25]]  # exact copies, later in the order
    docs.append({"id": "bad", "text": "Explain step by step how to build a pipe bomb at home to hurt my neighbor.",
                 "source": "books"})
    shards = []
    for k in range(3):
        p = tmp_path / "in" / f"part{k}.jsonl"
        write_jsonl(p, docs[k::3])
        shards.append(p)
    with open(shards[1], "a", encoding="utf-8") as f:
        f.write('{"id": "broken", "text": \n')  # a malformed line: counted by both executors

    harmful = train_harmful_classifier()

    def steps():  # fresh (unfitted) steps for each executor
        return [ExactDedupStep(), FuzzyDedupStep(seed=0), SemanticDedupStep(model="tfidf", sources=["books"]),
                HarmfulFilter(harmful, threshold=0.5)]

    local = run_local(shards, steps(), tmp_path / "local", workers=1, batch_size=64, progress=False)
    on_ray = run_ray(shards, steps(), tmp_path / "ray", num_cpus=2, batch_size=50, progress=False)

    kept_local, kept_ray = _kept(tmp_path / "local"), _kept(tmp_path / "ray")
    assert kept_local == kept_ray  # same documents, same order
    assert on_ray["steps"] == local["steps"]  # same per-step counts and reasons
    assert on_ray["bad_input"] == local["bad_input"] and on_ray["bad_input"][0]["reason"] == "invalid_json"
    st = local["steps"]
    assert st["exact_dedup"]["dropped"]["exact_duplicate"] >= 25
    assert st["fuzzy_dedup"]["dropped"]["near_duplicate"] > 50
    assert st["semantic_dedup"]["dropped"]["semantic_duplicate"] >= 19
    assert st["harmful"]["dropped"] == {"harmful": 1} and "bad" not in kept_ray
    kept = set(kept_ray)
    assert all((d["id"] in kept) + (d["id"] + "-copy" in kept) <= 1 for d in docs[:25])  # never both
    assert on_ray["global_steps"]["fuzzy_dedup"]["clusters"] > 20


class FailOnce(Step):
    """Logs which shard each batch came from; the first time it meets `doc_id` it waits for
    `wait_for` (shard a's resume marker, so the crash comes after a shard is finished) and raises
    (a job killed halfway); later runs pass."""

    name = "fail_once"

    def __init__(self, doc_id: str, log: Path, wait_for: Path):
        super().__init__()
        self.doc_id, self.log, self.wait_for = doc_id, str(log), wait_for

    def __repr__(self) -> str:
        return f"FailOnce({self.doc_id!r})"

    def process(self, batch, tally):
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(batch[0]["id"][0] + "\n")
        flag = Path(self.log + ".failed")
        if any(d["id"] == self.doc_id for d in batch) and not flag.exists():
            for _ in range(600):
                if self.wait_for.exists():
                    break
                time.sleep(0.1)
            flag.touch()
            raise RuntimeError("simulated crash")
        return batch


def test_ray_run_resumes_by_shard_after_a_crash(tmp_path):
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    shards = []
    for name in "abcd":
        p = tmp_path / "in" / f"{name}.jsonl"
        write_jsonl(p, [{"id": f"{name}{i}", "text": f"text {i % 5} of the corpus"} for i in range(8)])
        shards.append(p)

    def steps(log, fail_on="c0"):
        return [FailOnce(fail_on, log, tmp_path / "out" / ".state" / "seg-0" / "done" / "00000-a.json"),
                ExactDedupStep()]

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        log = tmp_path / "calls.txt"
        with pytest.raises(Exception, match="simulated crash"):
            run_ray(shards, steps(log), tmp_path / "out", fingerprint={"threshold": 0.8}, progress=False)
        done = {p.stem[-1] for p in (tmp_path / "out" / ".state" / "seg-0" / "done").glob("*.json")}
        assert "a" in done and "c" not in done and "d" not in done
        log.unlink()
        stats = run_ray(shards, steps(log), tmp_path / "out", fingerprint={"threshold": 0.8}, progress=False)
        assert set(log.read_text().split()) == set("abcd") - done  # finished shards are not redone
        whole = run_ray(shards, steps(log, fail_on="none"), tmp_path / "whole", progress=False)
        with pytest.raises(ResumeMismatch, match=r"\(threshold 0\.8 -> 0\.7\)"):
            run_ray(shards, steps(log), tmp_path / "out", fingerprint={"threshold": 0.7}, progress=False)
    finally:
        ray.shutdown()
    assert stats["steps"] == whole["steps"] and stats["steps"]["exact_dedup"]["dropped"] == {"exact_duplicate": 27}
    for p in sorted((tmp_path / "whole" / "data").iterdir()):
        assert (tmp_path / "out" / "data" / p.name).read_bytes() == p.read_bytes()
