"""The public Python API (#31): `import llm_recipe` is cheap and exports the stage functions; the
notebook-style example (sft -> dpo -> evaluate on a tiny model) runs; the other stage functions take
lists of dicts; the API reference is built from the docstrings with pdoc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_cheap_and_exports_the_api():
    code = ("import sys, llm_recipe; assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
            "print(sorted(n for n in llm_recipe.__all__ if not n.startswith('_'))); "
            "f = llm_recipe.sft; print(f.__module__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stdout.splitlines()
    assert out[0] == "['Result', 'curate', 'dpo', 'evaluate', 'grpo', 'reinforce_pp', 'reward_model', 'rloo', 'sft']"
    assert out[1] == "llm_recipe.api False"  # the API module itself imports nothing heavy either
    assert (ROOT / "src" / "llm_recipe" / "py.typed").is_file()


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """examples/sft_dpo_eval.py, as a user runs it (smoke size)."""
    out = tmp_path_factory.mktemp("example")
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "sft_dpo_eval.py"), str(out)], capture_output=True,
                         text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "EXAMPLE_STEPS": "2"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out / "run", res.stdout


def test_the_example_runs_sft_dpo_and_evaluate(example_run):
    run, stdout = example_run
    assert (run / "sft" / "model" / "complete.json").is_file() and (run / "dpo" / "model" / "complete.json").is_file()
    assert (run / "inputs" / "sft.jsonl").is_file() and (run / "inputs" / "dpo.jsonl").is_file()  # in-memory data, hashed
    assert (run / "inputs" / "sft-model" / "config.json").is_file()  # the loaded base model, saved
    recipe = (run / "recipe.yaml").read_text()
    assert "sft:" in recipe and "dpo:" in recipe and "lr: 0.003" in recipe  # learning_rate= read as lr
    rows = json.loads((run / "eval" / "report.json").read_text())["models"]
    assert rows["sft"]["reference"] == "base" and rows["dpo"]["reference"] == "sft"
    assert "DPO held-out reward accuracy:" in stdout and "   dpo vs    sft: KL" in stdout


def test_the_other_stage_functions_take_lists_of_dicts(example_run, tmp_path):
    import llm_recipe

    run, _ = example_run
    sft_model = run / "sft" / "model"
    pairs = [{"prompt": f"Question {i}?", "chosen": f"Let me explain. Answer {i}.", "rejected": f"Answer {i}."}
             for i in range(40)]
    rm = llm_recipe.reward_model(sft_model, pairs, output_dir=tmp_path / "rm", max_steps=2, batch_size=4,
                                 eval_batches=1, norm_samples=4, warmup_steps=0)
    assert isinstance(rm, llm_recipe.Result) and (rm.model_dir / "complete.json").is_file()
    assert "eval_accuracy" in rm.metrics and rm.figures["eval_accuracy"] is not None
    policy = llm_recipe.grpo(sft_model, [{"prompt": f"Tell me about {i}."} for i in range(24)],
                             output_dir=tmp_path / "grpo", iterations=1, num_generations=2,
                             rollout_batch_size=4, minibatch_size=4, n_prompts=8, eval_prompts=2,
                             max_completion_length=4)
    assert (policy.model_dir / "complete.json").is_file()
    assert set(policy.figures["after"]) >= {"score", "success", "kl"}
    loo = llm_recipe.rloo(sft_model, [{"prompt": f"Tell me about {i}."} for i in range(24)], reward_model=rm.model_dir,
                          output_dir=tmp_path / "rloo", iterations=1, num_generations=2, rollout_batch_size=4,
                          minibatch_size=4, n_prompts=8, eval_prompts=2, max_completion_length=4)
    assert loo.stage == "rloo" and loo.model_dir == tmp_path / "rloo" / "rloo" / "model"
    assert (loo.model_dir / "complete.json").is_file() and "rloo:" in (tmp_path / "rloo" / "recipe.yaml").read_text()
    assert set(loo.figures["after"]) >= {"score", "kl"}
    docs = [{"text": f"文書{i}: 東京は日本の首都です。これは十分に長い日本語の文章で、品質フィルタを通るはずのものです。", "id": str(i)}
            for i in range(30)]
    cur = llm_recipe.curate(docs, output_dir=tmp_path / "cur", mixing=None)
    assert cur.model_dir is None and cur.figures["records_in"] == 30
    assert cur.figures["docs_out"] + sum(cur.figures["dropped_by_step"].values()) == 30  # every document accounted for


def test_api_reference_is_built_from_the_docstrings(tmp_path):
    """pdoc renders the API module; every public function appears with its arguments' docs."""
    pdoc = pytest.importorskip("pdoc")
    import llm_recipe.api as api

    pdoc.pdoc("llm_recipe.api", output_directory=tmp_path)
    page = (tmp_path / "llm_recipe" / "api.html").read_text(encoding="utf-8")
    for name in api.__all__:
        obj = getattr(api, name)
        assert f'id="{name}"' in page and obj.__doc__, name
    assert "TRL&#39;s" in page or "TRL's" in page  # the docstrings' text, rendered
    assert "model_dir" in page and "reward_model" in page
