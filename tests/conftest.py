"""Shared fixtures: a small generated corpus and a tokenizer trained on it, built once per session."""

from __future__ import annotations

import json
import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def small_corpus_dir(tmp_path_factory):
    from llm_recipe.demo.sample_corpus import generate_sample_corpus

    return generate_sample_corpus(tmp_path_factory.mktemp("corpus"), docs_per_source=150, seed=0)


@pytest.fixture(scope="session")
def corpus_texts(small_corpus_dir):
    from llm_recipe.demo.sample_corpus import sample_corpus_files

    return [json.loads(line)["text"] for f in sample_corpus_files(small_corpus_dir) for line in open(f, encoding="utf-8")]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, corpus_texts):
    from llm_recipe.tokenizer.train import train_and_save

    out = tmp_path_factory.mktemp("tokenizer")
    train_and_save(corpus_texts, out, vocab_size=1200)
    return out


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny recipe, every stage cut to a few steps (tests/run_helpers.py), run once: its folder."""
    from run_helpers import FAST, FAST_ALIGN, FAST_EVAL
    from typer.testing import CliRunner

    from llm_recipe.cli import app

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    res = CliRunner().invoke(app, ["run", "--config", "tiny", "--output-dir", str(out), "--seed", "1", *FAST,
                                   *FAST_ALIGN, *FAST_EVAL])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Playwright (the browser tests: report, annotation app)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium for this test")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def sft_dir(tokenizer_dir, tmp_path_factory):
    """A micro SFT model whose short answers start with "Let me explain." 40% of the time: the style
    exists but is rare, so RL on a reward for it has something to find (test_ppo, test_rlvr)."""
    import random

    from transformers import AutoTokenizer

    from llm_recipe.config import ComputeConfig, SFTConfig
    from llm_recipe.demo.style import single_turn_examples
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.train.sft import run_sft

    out = tmp_path_factory.mktemp("rl_sft")
    rng = random.Random(0)
    recs = []
    for p, a in single_turn_examples(1500, seed=1)[:500]:
        a = a[:24].rsplit(" ", 1)[0] if len(a) > 24 else a
        recs.append({"messages": [{"role": "user", "content": p},
                                  {"role": "assistant", "content": ("Let me explain. " + a) if rng.random() < 0.4 else a}]})
    data = out / "sft.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = SFTConfig(data=[data], max_steps=150, lr=3e-3, batch_size=16, eval_every=1000, warmup_steps=10,
                    max_length=64, compute=ComputeConfig(num_threads=1))
    return run_sft(init=build_preset_model("micro", tok, seed=0), tokenizer=tok, cfg=cfg,
                   output_dir=out / "sft", seed=0, resume=False).model_dir
