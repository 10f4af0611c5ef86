"""Ray Data executor: same kept ids, same per-step stats and bad-input audit as the local executor,
for a pipeline with exact, fuzzy and semantic dedup plus a quality filter. Runs a local Ray with
2 CPUs. Ray is in the `test` extra, so this is not skipped when Ray is missing: it fails."""

from __future__ import annotations

import json
from pathlib import Path

from llm_recipe.data.dedup.steps import ExactDedupStep, FuzzyDedupStep, SemanticDedupStep
from llm_recipe.data.executor import run_local
from llm_recipe.data.quality.steps import HarmfulFilter, train_harmful_classifier
from llm_recipe.data.ray_executor import run_ray
from llm_recipe.demo.dedup_corpus import near_duplicate_corpus, paraphrase_corpus
from llm_recipe.files import write_jsonl


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
