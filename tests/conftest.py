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
