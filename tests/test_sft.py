"""SFT end to end: the tiny pretrained model follows the template after SFT on the bundled set.

One module-scoped SFT run, on a tiny model pretrained here (fewer steps than the demo, so the
result never depends on what else the checkout holds), feeds several tests.
"""

import json
import warnings

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import LoRAConfig, ModelConfig, PretrainConfig, SamplingConfig, SFTConfig
from llm_recipe.demo.sample_corpus import sample_corpus_files
from llm_recipe.demo.sft_set import sft_records
from llm_recipe.eval.format_following import dedupe_prompts, format_following, held_out_prompts
from llm_recipe.models.loading import load_causal_lm, load_tokenizer
from llm_recipe.models.presets import build_preset_model
from llm_recipe.tokenizer.chat_formats import (
    FORMATS,
    ChatFormatMismatchWarning,
    resolve_chat_format,
)
from llm_recipe.train.loop import Trainer
from llm_recipe.train.pretrain import run_pretrain
from llm_recipe.train.sft import SFTObjective, load_sft_data, run_sft
from llm_recipe.train.sft_data import Conversation, collate_rows, pack_examples, tokenize_examples

SFT = dict(bundled_examples=1600, max_steps=100, lr=3e-3, batch_size=8, warmup_steps=7, max_length=256,
           eval_every=50, eval_batches=8, log_every=10, format="chatml")
# Greedy with the project's default repetition penalty (generate.sampling), which breaks greedy loops.
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=96, repetition_penalty=1.1)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, small_corpus_dir, tokenizer):
    res = run_pretrain(
        data_files=sample_corpus_files(small_corpus_dir), tokenizer=tokenizer, model_cfg=ModelConfig(preset="tiny"),
        cfg=PretrainConfig(max_steps=120, batch_size=16, block_size=128, lr=3e-3, warmup_steps=10, eval_every=1000,
                           eval_batches=2, log_every=20),
        output_dir=tmp_path_factory.mktemp("base"), seed=0)
    return res.model_dir


@pytest.fixture(scope="module")
def sft_run(base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    cfg = SFTConfig(**SFT)
    res = run_sft(init=base_model, tokenizer=load_tokenizer(base_model), cfg=cfg, output_dir=out, seed=0,
                  records=sft_records(cfg, 0))
    return res, cfg


@pytest.fixture(scope="module")
def held_out(sft_run):
    res, cfg = sft_run
    tok = load_tokenizer(res.model_dir)
    data = load_sft_data(cfg, tok, resolve_chat_format(tok), seed=0, records=sft_records(cfg, 0))
    return held_out_prompts(dedupe_prompts(data.held_out), 40)


@pytest.mark.slow
def test_sft_lowers_held_out_answer_loss(sft_run):
    res, _ = sft_run
    assert res.steps == SFT["max_steps"] and not res.stopped_early
    # Answer-token loss on held-out conversations falls by more than half.
    assert res.final_eval_loss < 0.5 * res.initial_eval_loss


@pytest.mark.slow
def test_sft_model_follows_the_format_on_held_out_prompts(sft_run, base_model, held_out):
    res, _ = sft_run
    prompts, langs, keys = held_out
    assert len(prompts) >= 25
    tuned, tok = load_causal_lm(res.model_dir), load_tokenizer(res.model_dir)
    after = format_following(tuned, tok, prompts, GREEDY, expect_langs=langs, answer_keys=keys)
    before = format_following(load_causal_lm(base_model), load_tokenizer(base_model), prompts, GREEDY,
                              chat_format="chatml", expect_langs=langs)
    # Stops by itself at end of turn, non-empty, in the prompt's language (translations: the target's).
    assert after["rate"] >= 0.85, after["samples"]
    assert before["rate"] <= 0.5  # the base model does not: this is what SFT taught
    # English and Japanese prompts both count.
    ok_langs = {lang for lang, s in zip(langs, after["samples"], strict=True) if s["ok"]}
    assert ok_langs == {"ja", "en"}
    # the bundled set's fact questions carry the fact a right answer states: content, measured apart
    assert after["fact_prompts"] == sum(k is not None for k in keys) > 0 and 0 <= after["states_fact"] <= 1


@pytest.mark.slow
def test_saved_model_carries_its_chat_format(sft_run):
    res, _ = sft_run
    tok = AutoTokenizer.from_pretrained(res.model_dir)
    assert tok.chat_template == FORMATS["chatml"].template
    model = AutoModelForCausalLM.from_pretrained(res.model_dir)
    assert tok.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_chat_format(tok).name == "chatml"
    with pytest.warns(ChatFormatMismatchWarning):
        resolve_chat_format(tok, "llama2")


@pytest.mark.slow
def test_run_writes_reports(sft_run):
    res, _ = sft_run
    out = res.model_dir.parent
    rep = json.loads((out / "data_report.json").read_text())
    assert rep["data"]["skipped"] == {} and rep["data"]["records"] == SFT["bundled_examples"]
    assert rep["train_examples"] + rep["eval_examples"] == rep["data"]["kept"] == SFT["bundled_examples"]
    assert set(rep["coverage"]["categories"]) >= {"qa", "code", "safety", "translation"}
    assert rep["padding"]["packed"] < 0.05 < rep["padding"]["random_batches"]
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("token_acc" in e for e in events) and any("eval_loss" in e for e in events)
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "run.json").read_text())["stage"] == "sft"


@pytest.mark.slow
def test_cli_generate_chat_and_sft_stats(sft_run, tmp_path):
    res, _ = sft_run
    runner = CliRunner()
    r = runner.invoke(app, ["generate", "-m", str(res.model_dir), "-p", "What is the capital of France?",
                            "--chat", "--set", "generate.sampling.temperature=0"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("> What is the capital of France?\n") and "[length]" not in r.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"instruction": "x", "output": "y"}\nnope\n')
    r = runner.invoke(app, ["sft-stats", "-d", str(bad), "-t", str(res.model_dir), "--out", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert "no_assistant_turn: 1" in r.output and "invalid_json: 1" in r.output and "SKEW" in r.output
    assert json.loads((tmp_path / "s.json").read_text())["data"]["kept"] == 1
    r = runner.invoke(app, ["generate", "-m", str(res.model_dir), "-p", "x", "--format", "vicuna"])
    assert r.exit_code == 2 and "unknown chat format" in r.output


# ---- small, independent checks (micro model) ---------------------------------------------------

CONVS = [
    [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."}],
    [{"role": "user", "content": "猫は何を食べますか？"}, {"role": "assistant", "content": "魚や肉を食べます。"},
     {"role": "user", "content": "犬は？"}, {"role": "assistant", "content": "犬は肉を食べます。"}],
    [{"role": "user", "content": "Write a story."}, {"role": "assistant", "content": "Once upon a time, a cat."}],
]


def test_packed_logits_equal_each_conversation_alone(tokenizer):
    model = build_preset_model("micro", tokenizer, seed=0).eval()
    exs = tokenize_examples([Conversation(c) for c in CONVS], tokenizer, FORMATS["chatml"], max_length=512)
    rows = pack_examples(exs, 512)
    assert len(rows) == 1 and rows[0].n_seqs == 3
    batch = collate_rows(rows, tokenizer.pad_token_id)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        starts = np.flatnonzero(rows[0].position_ids == 0).tolist() + [len(rows[0])]
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            ids = torch.from_numpy(rows[0].input_ids[a:b]).long()[None]
            alone = model(input_ids=ids).logits[0]
            torch.testing.assert_close(packed[a:b], alone, atol=1e-5, rtol=1e-5)
        # Without per-conversation positions (one long causal sequence) the logits would differ.
        flat = model(input_ids=batch["input_ids"]).logits[0]
        assert not torch.allclose(flat[starts[1]:starts[2]], packed[starts[1]:starts[2]], atol=1e-3)


def _loop_metrics(tmp_path, tokenizer, rows, batch_size, grad_accum):
    cfg = SFTConfig(max_steps=1, batch_size=batch_size, grad_accum=grad_accum, lr=1e-3, warmup_steps=0,
                    log_every=1, max_grad_norm=1e9)
    model = build_preset_model("micro", tokenizer, seed=0)
    trainer = Trainer(model, SFTObjective(tokenizer.pad_token_id), rows, cfg, tmp_path, seed=0)
    trainer.fit()
    return json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])


def test_grad_accumulation_averages_over_tokens_not_micro_batches(tmp_path, tokenizer):
    # Two rows with very different numbers of answer tokens.
    convs = [CONVS[0], [{"role": "user", "content": "Tell me a long story."},
                        {"role": "assistant", "content": "Once upon a time " * 12}]]
    rows = [r for c in convs for r in pack_examples(tokenize_examples([Conversation(c)], tokenizer,
                                                                      FORMATS["chatml"], max_length=512), 512)]
    one = _loop_metrics(tmp_path / "a", tokenizer, rows, batch_size=2, grad_accum=1)
    accum = _loop_metrics(tmp_path / "b", tokenizer, rows, batch_size=1, grad_accum=2)
    # Same token-level mean loss and the same gradient (its norm, logged before clipping).
    assert accum["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert accum["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)


def test_lora_switch_trains_adapters_and_saves_a_merged_model(tmp_path, tokenizer):
    base = tmp_path / "base"
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    cfg = SFTConfig(bundled_examples=64, max_steps=3, batch_size=4, lr=1e-2, warmup_steps=0, eval_every=100,
                    lora=LoRAConfig(r=4, alpha=8))
    res = run_sft(init=str(base), tokenizer=load_tokenizer(base), cfg=cfg, output_dir=tmp_path / "sft", seed=0,
                  records=sft_records(cfg, 0))
    assert res.report["trainable_parameters"] < 0.2 * res.report["parameters"]
    assert (tmp_path / "sft" / "adapter" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(res.model_dir)  # a plain model: no peft needed to load it
    assert not any("lora" in k for k in merged.state_dict())
    original = AutoModelForCausalLM.from_pretrained(base)
    q0, q1 = original.model.layers[0].self_attn.q_proj.weight, merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(q0, q1)  # the adapters were trained and merged in
    torch.testing.assert_close(original.model.embed_tokens.weight, merged.model.embed_tokens.weight)  # frozen


def test_a_stopped_lora_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, tokenizer):
    """A LoRA run stopped at a checkpoint (SIGTERM, or save_every) resumes from its adapter and
    optimizer state: the HH recipe's SFT, stopped at step 18, failed to resume (it looked for the
    full weights a LoRA checkpoint does not hold)."""
    from safetensors.torch import load_file

    from llm_recipe.train.loop import stop_at_step

    base = tmp_path / "base"
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    cfg = SFTConfig(bundled_examples=64, max_steps=6, batch_size=4, lr=1e-2, warmup_steps=2, eval_every=100,
                    log_every=1, save_every=2, lora=LoRAConfig(r=4, alpha=8))

    def run(out, **kw):
        return run_sft(init=str(base), tokenizer=load_tokenizer(base), cfg=cfg, output_dir=out, seed=0,
                       records=sft_records(cfg, 0), **kw)

    full = run(tmp_path / "full")
    part = run(tmp_path / "resumed", callbacks=[stop_at_step(3)])
    assert part.stopped_early and not part.model_dir.exists()
    assert (tmp_path / "resumed" / "checkpoints" / "step-0000003" / "adapter_model.safetensors").exists()
    resumed = run(tmp_path / "resumed")
    a, b = load_file(full.model_dir / "model.safetensors"), load_file(resumed.model_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    losses = [[json.loads(x)["loss"] for x in (d / "metrics.jsonl").read_text().splitlines() if "loss" in json.loads(x)]
              for d in (tmp_path / "full", tmp_path / "resumed")]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5) and len(losses[0]) == 6


@pytest.mark.slow
def test_cli_sft_stage_samples_the_same_prompts_before_and_after(tmp_path, tokenizer):
    base = tmp_path / "base"
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    r = CliRunner().invoke(app, ["sft", "-m", str(base), "-o", str(tmp_path / "run"), "--set", "sft.max_steps=2",
                                 "--set", "sft.bundled_examples=64", "--set", "sft.batch_size=4",
                                 "--set", "generate.sampling.max_new_tokens=4"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "run" / "sft"
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["prompt"] for s in samples] == SFTConfig().demo_prompts
    assert all({"before", "after"} <= set(s) for s in samples)
    follow = json.loads((out / "format_following.json").read_text())
    assert follow["before"]["n"] == follow["after"]["n"] > 0
    assert AutoTokenizer.from_pretrained(out / "model").chat_template == FORMATS["chatml"].template


def test_compute_block_bf16_weights_and_gradient_checkpointing(tmp_path, tokenizer):
    """compute.dtype loads (and saves) bf16 weights; gradient checkpointing recomputes activations
    and changes the memory, not the loss."""
    from safetensors.torch import load_file

    from llm_recipe.config import ComputeConfig

    base = tmp_path / "base"
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    losses = {}
    for name, compute in {"plain": ComputeConfig(), "ckpt": ComputeConfig(gradient_checkpointing=True),
                          "bf16": ComputeConfig(dtype="bfloat16")}.items():
        cfg = SFTConfig(bundled_examples=64, max_steps=3, batch_size=4, lr=1e-3, warmup_steps=0, eval_every=100,
                        log_every=1, max_length=96, compute=compute)
        res = run_sft(init=str(base), tokenizer=load_tokenizer(base), cfg=cfg, output_dir=tmp_path / name, seed=0,
                      records=sft_records(cfg, 0))
        losses[name] = [json.loads(x)["loss"] for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
                        if "loss" in json.loads(x)]
        weights = load_file(res.model_dir / "model.safetensors")
        assert {w.dtype for w in weights.values()} == {torch.bfloat16 if name == "bf16" else torch.float32}
    assert losses["ckpt"] == pytest.approx(losses["plain"], rel=1e-5)
    assert losses["bf16"] == pytest.approx(losses["plain"], rel=0.05) and losses["bf16"] != losses["plain"]


def test_lora_trains_the_rows_of_tokens_the_chat_format_adds(tmp_path, corpus_texts):
    """A tokenizer without ChatML's markers: SFT adds them, and with LoRA their embedding rows are
    trained (peft trainable tokens) and merged, the other rows stay the base model's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = __import__("tokenizers").decoders.ByteLevel()
    tk.train_from_iterator(corpus_texts[:300], trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    assert "<|im_start|>" not in tok.get_vocab()
    base = tmp_path / "base"
    build_preset_model("micro", tok, seed=0).save_pretrained(base)
    tok.save_pretrained(base)
    cfg = SFTConfig(bundled_examples=64, max_steps=4, batch_size=4, lr=2e-2, warmup_steps=0, eval_every=100,
                    max_length=160, format="chatml", lora=LoRAConfig(r=4, alpha=8))
    res = run_sft(init=str(base), tokenizer=load_tokenizer(base), cfg=cfg, output_dir=tmp_path / "sft", seed=0,
                  records=sft_records(cfg, 0))
    merged = AutoModelForCausalLM.from_pretrained(res.model_dir)
    saved_tok = AutoTokenizer.from_pretrained(res.model_dir)
    new = saved_tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert new == [len(tok), len(tok) + 1]
    assert res.report["trainable_parameters"] >= 2 * merged.config.hidden_size
    base_emb = AutoModelForCausalLM.from_pretrained(base).get_input_embeddings().weight
    emb = merged.get_input_embeddings().weight
    torch.testing.assert_close(emb[: len(tok)], base_emb)  # the base vocabulary is frozen
    # peft's trainable tokens: the adapter keeps the rows as resized (untrained) and as trained
    from safetensors.torch import load_file

    adapter = load_file(tmp_path / "sft" / "adapter" / "adapter_model.safetensors")
    key = next(k for k in adapter if k.endswith("embed_tokens.token_adapter.trainable_tokens_delta"))
    before = adapter[key.replace("trainable_tokens_delta", "base_layer.weight")][new]
    assert not torch.allclose(adapter[key], before)  # trained ...
    torch.testing.assert_close(emb[new], adapter[key])  # ... and merged into the saved model


def test_two_short_runs_with_one_seed_give_identical_weights(tmp_path, tokenizer):
    """Reproducibility: same seed, same data, same thread count -> byte-identical safetensors."""
    import hashlib

    base = tmp_path / "base"
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    cfg = SFTConfig(bundled_examples=64, max_steps=3, batch_size=4, lr=1e-2, warmup_steps=0, eval_every=100)
    digests = []
    for name in ("a", "b"):
        res = run_sft(init=str(base), tokenizer=load_tokenizer(base), cfg=cfg, output_dir=tmp_path / name, seed=3,
                      records=sft_records(cfg, 3))
        digests.append(hashlib.sha256((res.model_dir / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    before = hashlib.sha256((base / "model.safetensors").read_bytes()).hexdigest()
    assert digests[0] != before  # it trained
