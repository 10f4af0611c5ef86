"""The reference DPO demo end to end: SFT model -> style set -> DPO -> held-out answers.

A small SFT model is trained here (the `micro` preset on the bundled set's single-turn QA
conversations) so the module stays within the test budget; the dpo STAGE is the same call the
recipe makes.

Why the fixture looks the way it does (measured while closing issue 8): with the session's
1200-token vocabulary and 254 QA records, the micro SFT model answers held-out prompts with
near-random fragments ("The capital of Spt is Spto."), and even the SFT model itself, fed the
prefix, continues with other garbage: no DPO setting kept the content (mean ROUGE-L vs SFT
0.12-0.21 over lr 5e-4..3e-3, β 0.1..1, α 1..3; 0.32 after 400 SFT steps). With the demo's
vocabulary size (4096: whole words and entity names are single tokens) and ~4x the QA records
(1060), the same model answers in fluent templates ("The main language of China is Spanish."),
and DPO long enough to learn the 8-token prefix keeps those templates after it (lr 3e-3, α 1:
40 steps 0% prefix; 80 steps 100%, overlap 0.48; 120 steps 100%, overlap 0.64).
"""

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from llm_recipe.config import DPOConfig, RecipeConfig, SFTConfig
from llm_recipe.demo.sft_set import generate_bundled_sft
from llm_recipe.eval.style import strip_prefix
from llm_recipe.files import write_jsonl
from llm_recipe.models.loading import load_causal_lm, load_tokenizer
from llm_recipe.models.presets import build_preset_model
from llm_recipe.preference.text_metrics import rouge_l
from llm_recipe.stages import dpo as dpo_stage
from llm_recipe.tokenizer.train import train_and_save
from llm_recipe.train.dpo import preference_loss, sequence_logps
from llm_recipe.train.dpo_data import collate_shared, tokenize_dpo_pairs
from llm_recipe.train.sft import run_sft
from llm_recipe.train.sft_data import split_sft_data
from llm_recipe.train.style_data import style_pairs_from_sft

pytestmark = pytest.mark.slow  # trains or drives real processes for a minute or more

PREFIX = "Let me explain."
STEPS = 120


@pytest.fixture(scope="module")
def demo(tmp_path_factory, corpus_texts):
    out = tmp_path_factory.mktemp("dpo_demo")
    tokenizer = train_and_save(corpus_texts, out / "tokenizer", vocab_size=4096)  # the demo's vocab size
    records = [r for r in generate_bundled_sft(12000, seed=0, system_prompt_rate=0.0)
               if r["category"] == "qa" and len(r.get("messages", [])) == 2]  # ~1000 single-turn QA
    write_jsonl(out / "qa.jsonl", records)
    sft_cfg = SFTConfig(data=[out / "qa.jsonl"], max_steps=200, batch_size=16, max_length=64, lr=3e-3,
                        warmup_steps=10, eval_every=1000, log_every=50, eval_fraction=0.15)
    sft = run_sft(init=build_preset_model("micro", tokenizer, seed=0), tokenizer=tokenizer, cfg=sft_cfg,
                  output_dir=out / "sft", seed=0)
    # α = 1 (NLL on chosen) keeps the answer after the prefix likely; 120 steps: the prefix starts
    # ~140 nats less likely than the plain answer and is greedy-first only after ~80 steps.
    cfg = RecipeConfig(output_dir=out, sft=sft_cfg,
                       dpo=DPOConfig(max_steps=STEPS, style_pairs=200, batch_size=16, lr=3e-3, sft_alpha=1.0,
                                     eval_every=40, log_every=10, eval_prompts=30, max_new_tokens=24))
    from run_helpers import call_stage

    model_dir = Path(call_stage(dpo_stage.STAGE, cfg, sft_model=sft.model_dir)["dpo_model"])
    return {"out": out, "cfg": cfg, "sft_dir": sft.model_dir, "model_dir": model_dir,
            "report": json.loads((out / "dpo" / "style_report.json").read_text()),
            "metrics": [json.loads(ln) for ln in (out / "dpo" / "metrics.jsonl").read_text().splitlines()]}


def test_dpo_teaches_the_prefix(demo):
    rep = demo["report"]
    assert rep["prompts"] >= 15  # held-out QA prompts: seen by neither SFT nor DPO
    assert rep["sft_rate"] <= 0.10
    assert rep["dpo_rate"] >= 0.90
    samples = rep["samples"]
    assert len(samples) == rep["prompts"]
    starts = [s["dpo"].lstrip().startswith(PREFIX) for s in samples]
    assert sum(starts) / len(starts) == rep["dpo_rate"]
    # The rest of the answer keeps the SFT answer's content: ROUGE-L F1 of the DPO answer minus the
    # prefix against the SFT model's own greedy answer to the same held-out prompt (same
    # max_new_tokens). Measured: mean 0.64, 74% of prompts >= 0.5 (same template and most words,
    # the guessed entity may differ); a model that drifts scores ~0.2 (see the module docstring),
    # unrelated answers ~0. Thresholds leave ~3 prompts of margin.
    own = [rouge_l(strip_prefix(s["dpo"], PREFIX), s["sft"]) for s in samples]
    assert [s["rouge_l"] for s in samples] == pytest.approx(own, abs=1e-3)
    assert rep["overlap_mean"] >= 0.5
    assert rep["overlap_ge_0.5"] >= 0.6


def test_step0_loss_is_log2_and_metrics_every_logging_step(demo):
    m = demo["metrics"]
    ev0 = next(e for e in m if e["step"] == 0 and "eval_loss" in e)
    # Policy == reference at step 0; the cached reference was scored in the eval batch layout.
    assert ev0["eval_dpo_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert ev0["eval_loss"] == pytest.approx(math.log(2) + ev0["eval_sft_nll"], abs=1e-5)  # + α·NLL, α = 1
    assert ev0["eval_reward_accuracy"] == 0.0  # ties are not wins
    assert ev0["eval_reward_margin"] == pytest.approx(0.0, abs=1e-6)
    first_train = next(e for e in m if "reward_accuracy" in e and "lr" in e)
    assert first_train["step"] == 10
    train_steps = [e["step"] for e in m if "lr" in e]
    assert train_steps == list(range(10, STEPS + 1, 10))
    for e in m:
        if "lr" in e:
            for k in ("loss", "dpo_loss", "reward_chosen", "reward_rejected", "reward_accuracy", "reward_margin",
                      "response_len", "sft_nll"):
                assert k in e, k
    last = [e for e in m if "eval_loss" in e][-1]
    assert last["eval_dpo_loss"] < 0.3 and last["eval_reward_accuracy"] >= 0.9
    run_dir = demo["out"] / "dpo"
    assert (run_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "rewards.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["reference"]["mode"] == "precompute" and (run_dir / "reference" / "ref_logps.safetensors").exists()


def test_reported_reward_accuracy_matches_an_independent_recount(demo):
    """The logged final eval accuracy/margin equal a recount from the saved models' log-probs."""
    cfg = demo["cfg"]
    data = style_pairs_from_sft(split_sft_data(cfg.sft, cfg.seed), cfg.dpo, cfg.seed)
    tok = load_tokenizer(demo["sft_dir"])
    from llm_recipe.tokenizer.chat_formats import resolve_chat_format

    ex = tokenize_dpo_pairs(data.eval, tok, resolve_chat_format(tok), cfg.dpo.max_length)
    batch = collate_shared(ex, tok.pad_token_id)
    with torch.no_grad():
        pc, pr = sequence_logps(load_causal_lm(demo["model_dir"]), batch)
        rc, rr = sequence_logps(load_causal_lm(demo["sft_dir"]), batch)
    losses, c, r = preference_loss(pc, pr, rc, rr, beta=cfg.dpo.beta)
    last = [e for e in demo["metrics"] if "eval_loss" in e][-1]
    assert last["eval_reward_accuracy"] == pytest.approx((c > r).float().mean().item(), abs=1e-6)
    assert last["eval_reward_margin"] == pytest.approx((c - r).mean().item(), abs=1e-3)


def test_stage_is_skipped_when_done_and_cli_errors_are_one_line(demo, tmp_path):
    from llm_recipe.cli import app

    before = (demo["model_dir"] / "model.safetensors").stat().st_mtime_ns
    from run_helpers import call_stage

    assert call_stage(dpo_stage.STAGE, demo["cfg"], sft_model=demo["sft_dir"])["dpo_model"] == str(demo["model_dir"])
    assert (demo["model_dir"] / "model.safetensors").stat().st_mtime_ns == before
    res = CliRunner().invoke(app, ["dpo", "--model", str(tmp_path / "missing"), "-o", str(tmp_path)])
    assert res.exit_code == 2 and "no such model directory" in res.output
    res = CliRunner().invoke(app, ["dpo", "-o", str(tmp_path / "none")])
    assert res.exit_code == 2 and "dpo: no model to start from: pass --model/-m" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    res = CliRunner().invoke(app, ["dpo", "--model", str(demo["sft_dir"]), "--data", str(bad), "-o", str(tmp_path)])
    assert res.exit_code == 2 and "dpo: preference data: no usable records (1 read; skipped: invalid_json 1" in res.output
