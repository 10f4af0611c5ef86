import json

import numpy as np
import pytest
import torch
from pref_helpers import one_thread, reward_model_dir, rm_config
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.demo.style import STYLE_PREFIX, style_preference_pairs
from llm_recipe.infer.reward import CombinedScorer, RewardScorer
from llm_recipe.models.presets import build_preset_model
from llm_recipe.models.reward_io import render_response, reward_format
from llm_recipe.preference.records import PreferencePair, split_by_prompt
from llm_recipe.train.reward_model import (
    RewardObjective,
    build_reward_model,
    save_reward_model,
    tokenize_pairs,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tokenizer):
    """An untrained micro causal LM saved as an HF directory (a stand-in SFT model)."""
    out = tmp_path_factory.mktemp("rm_base")
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tok_pairs(base_dir):
    tok = AutoTokenizer.from_pretrained(base_dir)
    pairs = style_preference_pairs(24, seed=3)
    for i, p in enumerate(pairs):  # graded-style margins on some pairs, and a multi-turn prompt
        p.margin = [0.0, 1 / 3, 1.0][i % 3]
    pairs[0] = PreferencePair([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                               {"role": "user", "content": "Capital of Japan?"}], "Tokyo.", "Osaka.", 0.5)
    return tok, tokenize_pairs(pairs, tok, reward_format(tok), max_length=512)


@pytest.fixture(scope="module")
def trained_rm(tmp_path_factory, tokenizer_dir):
    return reward_model_dir(str(tmp_path_factory.getbasetemp()), str(tokenizer_dir))


@pytest.mark.parametrize(("center", "seed"), [(None, 0), (0.01, 1)])
def test_loss_equals_trl_reward_trainer(base_dir, tok_pairs, tmp_path, center, seed):
    """Same model, same tokens: our loss (plain and shared-prompt layouts) == TRL's RewardTrainer."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    tok, pairs = tok_pairs
    model = build_reward_model(base_dir, tok, seed=1)
    with torch.no_grad():  # a non-trivial head so rewards differ between sequences
        model.score.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(seed))
    batch_pairs = pairs[:8]
    ours = {share: RewardObjective(tok.pad_token_id, share_prompt=share, center_coef=center).loss(
        model, RewardObjective(tok.pad_token_id, share_prompt=share).collate(batch_pairs))[0].item()
        for share in (False, True)}

    rows = [{"chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids, "margin": p.margin} for p in batch_pairs]
    args = RewardConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=8, report_to=[],
                        bf16=False, use_cpu=True, gradient_checkpointing=False, center_rewards_coefficient=center,
                        max_length=None, seed=0)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    assert "margin" in batch
    trl_loss = trainer.compute_loss(trainer.model, batch).item()
    assert abs(ours[False] - trl_loss) < 1e-5, (ours, trl_loss)
    assert abs(ours[True] - trl_loss) < 1e-5, (ours, trl_loss)
    assert abs(trl_loss - np.log(2)) > 1e-2  # not a degenerate all-equal-rewards batch


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_shared_prompt_layout_gives_the_same_rewards(base_dir, tok_pairs, pooling):
    tok, pairs = tok_pairs
    model = build_reward_model(base_dir, tok, seed=2)
    model.eval()
    shared = RewardObjective(tok.pad_token_id, pooling, share_prompt=True)
    plain = RewardObjective(tok.pad_token_id, pooling, share_prompt=False)
    b_shared, b_plain = shared.collate(pairs), plain.collate(pairs)
    with torch.no_grad():
        rc_s, rr_s = shared.rewards(model, b_shared)
        rc_p, rr_p = plain.rewards(model, b_plain)
    torch.testing.assert_close(rc_s, rc_p, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rr_s, rr_p, atol=1e-5, rtol=1e-5)
    # Independent reference from the backbone's hidden states: head(last non-pad state) or head(mean state).
    ids, mask = b_plain["input_ids"][: len(pairs)], b_plain["attention_mask"][: len(pairs)]
    with torch.no_grad():
        h = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        if pooling == "last":
            pooled = h[torch.arange(len(pairs)), mask.sum(1) - 1]
        else:
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        torch.testing.assert_close(rc_p, model.score(pooled).squeeze(-1), atol=1e-5, rtol=1e-5)
    # The shared layout really is smaller: one row per pair, the prompt encoded once.
    assert b_shared["input_ids"].shape[0] * 2 == b_plain["input_ids"].shape[0]
    assert (b_shared["segments"] >= 0).sum() < b_plain["attention_mask"].sum()
    # Eager attention takes the additive-mask path and agrees too.
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        rc_e, _ = shared.rewards(model, b_shared)
    torch.testing.assert_close(rc_e, rc_p, atol=1e-5, rtol=1e-5)


def test_trained_rm_learns_the_style_rule(trained_rm):
    report = json.loads((trained_rm.parent / "rm_report.json").read_text())
    # Held-out prompts (split by prompt hash) were never trained on.
    assert report["eval"]["pairs"] >= 40
    assert report["eval"]["accuracy"] >= 0.95
    assert report["initial_eval_accuracy"] < 0.9  # it was learned, not there from the start
    assert report["eval"]["mean_chosen"] > report["eval"]["mean_rejected"]
    assert (trained_rm.parent / "metrics.jsonl").exists() and (trained_rm.parent / "run.json").exists()


def test_saved_rm_loads_with_auto_class_and_scores_match(trained_rm):
    model = AutoModelForSequenceClassification.from_pretrained(trained_rm)
    tok = AutoTokenizer.from_pretrained(trained_rm)
    assert model.config.num_labels == 1 and (trained_rm / "model.safetensors").exists()
    assert not list(trained_rm.glob("*.bin")) and tok.chat_template  # the format travels with the RM
    scorer = RewardScorer.load(trained_rm)
    prompts = ["What is the capital of France?", "猫は何を食べますか？", "Write a haiku about rain."]
    answers = ["Paris is the capital.", STYLE_PREFIX + "猫は魚を食べます。", STYLE_PREFIX + "Rain falls softly."]
    texts = [render_response(scorer.fmt, tok, p, a) for p, a in zip(prompts, answers, strict=True)]
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        hf = model(**enc).logits.squeeze(-1).numpy()
    np.testing.assert_allclose(scorer.raw(prompts, answers), hf, atol=1e-5)
    # Normalization statistics travel with the model and are applied by the scorer.
    info = json.loads((trained_rm / "reward_model.json").read_text())
    assert scorer.mean == info["normalization"]["mean"] and scorer.std == info["normalization"]["std"] > 0
    np.testing.assert_allclose(scorer.score(prompts, answers), (hf - scorer.mean) / scorer.std, atol=1e-5)
    # On the reference responses (training pairs) normalized rewards have mean 0 and std 1.
    cfg = rm_config().rm
    train, _ = split_by_prompt(style_preference_pairs(cfg.synthetic_pairs, 0), cfg.eval_fraction, 0)
    ref = train[: cfg.norm_samples]
    z = scorer.score([p.prompt for p in ref for _ in (0, 1)], [t for p in ref for t in (p.chosen, p.rejected)])
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-4


def test_weighted_combination_of_reward_models(trained_rm, base_dir, tmp_path):
    style = RewardScorer.load(trained_rm)
    # A second RM ("length"): the untrained base with a head that reads one hidden direction.
    tok = AutoTokenizer.from_pretrained(base_dir)
    other_model = build_reward_model(base_dir, tok, seed=5)
    other_dir = save_reward_model(other_model, tok, tmp_path / "other_rm",
                                  {"pooling": "mean", "normalization": {"mean": 0.5, "std": 2.0}})
    other = RewardScorer.load(other_dir)
    assert other.pooling == "mean"
    prompts = ["Where does a dog live?"] * 2
    answers = ["A dog lives in houses.", STYLE_PREFIX + "A dog lives in houses."]
    s_style, s_other = style.score(prompts, answers), other.score(prompts, answers)
    combo = CombinedScorer([(style, 1.0), (other, 0.5)])
    np.testing.assert_allclose(combo.score(prompts, answers), s_style + 0.5 * s_other, atol=1e-9)
    assert np.argmax(combo.score(prompts, answers)) == 1  # the style RM dominates: prefix wins
    flipped = CombinedScorer([(style, -1.0), (other, 0.5)])
    assert np.argmax(flipped.score(prompts, answers)) == 0  # a negative weight flips the preference


def test_rm_score_cli_reports_pairwise_accuracy(trained_rm, tmp_path):
    pairs = style_preference_pairs(40, seed=7)
    f = tmp_path / "pairs.jsonl"
    lines = [json.dumps(p.to_json(), ensure_ascii=False) for p in pairs]
    conv = [{"role": "user", "content": pairs[0].prompt}]  # TRL's conversational implicit-prompt pair
    lines += [json.dumps({"chosen": [*conv, {"role": "assistant", "content": pairs[0].chosen}],
                          "rejected": [*conv, {"role": "assistant", "content": pairs[0].rejected}]}),
              json.dumps({"prompt": "q", "response": "a"}), json.dumps({"prompt": "q"}), "{bad"]
    f.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scored.jsonl"
    res = CliRunner().invoke(app, ["rm", "score", "--rm", str(trained_rm), "-i", str(f), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "pairwise accuracy: 1.000" in res.output or "pairwise accuracy: 0.9" in res.output
    assert "skipped missing_field: 1" in res.output and "skipped invalid_json: 1" in res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 42 and "reward" in rows[-1]
    assert rows[40]["reward_chosen"] == pytest.approx(rows[0]["reward_chosen"], abs=1e-4)  # the same pair
    acc = np.mean([r["reward_chosen"] > r["reward_rejected"] for r in rows[:40]])
    assert acc >= 0.95


def test_rm_train_cli_reads_files_counts_skips_and_skips_when_done(tmp_path, base_dir):
    good = [p.to_json() for p in style_preference_pairs(48, seed=11)]
    f = tmp_path / "prefs.jsonl"
    f.write_text("\n".join([json.dumps(x, ensure_ascii=False) for x in good]
                           + [json.dumps({"prompt": "q", "chosen": "x", "rejected": "x"})]) + "\n")
    args = ["rm", "train", "--model", str(base_dir), "--data", str(f), "-o", str(tmp_path / "run"),
            "--set", "rm.max_steps=2", "--set", "rm.batch_size=8", "--set", "rm.eval_every=2",
            "--set", "rm.norm_samples=8"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    run = tmp_path / "run" / "reward_model"
    report = json.loads((run / "data_report.json").read_text())
    assert report["read"]["skipped"] == {"chosen_equals_rejected": 1}
    assert report["read"]["where"]["chosen_equals_rejected"] == [f"{f}:49"]
    assert report["train_pairs"] + report["eval_pairs"] == 48
    # run.json names the model it started from, with its hashes (#20: it recorded init_from: null)
    init = json.loads((run / "run.json").read_text())["init_from"]
    assert init["path"] == str(base_dir.resolve()) and len(init["weights"]) == len(init["tokenizer"]) == 64
    assert init["weights"] == json.loads((run / "run_key.json").read_text())["base"]["weights"]
    mtime = (run / "model" / "model.safetensors").stat().st_mtime
    res = CliRunner().invoke(app, args)  # complete: returns the existing model without training
    assert res.exit_code == 0 and (run / "model" / "model.safetensors").stat().st_mtime == mtime
    res = CliRunner().invoke(app, ["rm", "train", "--data", str(f), "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--model" in res.output
