import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_recipe.config import ModelConfig, PretrainConfig
from llm_recipe.demo.sample_corpus import sample_corpus_files
from llm_recipe.train.loop import stop_at_step
from llm_recipe.train.pretrain import read_documents, run_pretrain


def _cfg(**kw):
    base = dict(max_steps=24, batch_size=4, block_size=64, lr=3e-3, warmup_steps=4, eval_every=12,
                eval_batches=4, log_every=4, save_every=None, grad_accum=2)
    base.update(kw)
    return PretrainConfig(**base)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, small_corpus_dir, tokenizer):
    out = tmp_path_factory.mktemp("pretrain")
    result = run_pretrain(
        data_files=sample_corpus_files(small_corpus_dir), tokenizer=tokenizer,
        model_cfg=ModelConfig(preset="tiny"), cfg=_cfg(max_steps=80, batch_size=16, grad_accum=1, eval_every=40, warmup_steps=8),
        output_dir=out, seed=0,
    )
    return result


@pytest.mark.slow
def test_validation_loss_falls_well_below_initial(pretrained):
    assert pretrained.initial_eval_loss > 6.5  # ~ln(vocab) for a fresh model
    # 80 small steps must cut validation loss by over 2 nats (perplexity / 7), to below the
    # corpus' unigram entropy (~5.5 nats), i.e. the model uses context.
    assert pretrained.final_eval_loss < pretrained.initial_eval_loss - 2.0
    assert pretrained.final_eval_loss < 5.0


@pytest.mark.slow
def test_saved_directory_loads_with_auto_classes_and_generates(pretrained):
    tok = AutoTokenizer.from_pretrained(pretrained.model_dir)
    model = AutoModelForCausalLM.from_pretrained(pretrained.model_dir)
    assert (pretrained.model_dir / "model.safetensors").exists()
    assert not list(pretrained.model_dir.glob("*.bin"))
    ids = tok(["東京は", "The capital of"], return_tensors="pt", padding=True, padding_side="left")
    out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape == (2, ids["input_ids"].shape[1] + 8) or out.shape[1] > ids["input_ids"].shape[1]
    text = tok.decode(out[0], skip_special_tokens=True)
    assert text.startswith("東京は") and len(text) > len("東京は")


@pytest.mark.slow
def test_run_writes_metrics_manifest_and_data_report(pretrained):
    run_dir = pretrained.model_dir.parent
    events = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("tokens_per_s" in e for e in events) and any("eval_ppl" in e for e in events)
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["versions"]["torch"] and len(manifest["inputs"]) == 5
    assert all(len(h) == 64 for h in manifest["inputs"].values())
    assert (run_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((run_dir / "data_report.json").read_text())
    # every training token is in a window of 64 or counted as a source's dropped tail
    train_tokens = report["read"]["tokens"]["total"]["train_tokens"]
    per_source = report["train"]["sources"].values()
    assert train_tokens == sum(s["windows"] * 64 + s["dropped_tail_tokens"] for s in per_source)
    assert report["read"]["documents"] == 750 and report["val_documents"] > 0


@pytest.mark.slow
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, small_corpus_dir, tokenizer):
    files = sample_corpus_files(small_corpus_dir)
    kw = dict(data_files=files, tokenizer=tokenizer, model_cfg=ModelConfig(preset="micro"), seed=3)
    full = run_pretrain(cfg=_cfg(), output_dir=tmp_path / "full", **kw)

    # Interrupted at step 10 (mid-epoch, mid-schedule): a checkpoint is written and no final model.
    part = run_pretrain(cfg=_cfg(), output_dir=tmp_path / "resumed", callbacks=[stop_at_step(10)], **kw)
    assert part.stopped_early and part.steps == 10 and not part.model_dir.exists()
    resumed = run_pretrain(cfg=_cfg(), output_dir=tmp_path / "resumed", **kw)
    assert resumed.steps == full.steps == 24

    a = load_file(full.model_dir / "model.safetensors")
    b = load_file(resumed.model_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert resumed.final_eval_loss == pytest.approx(full.final_eval_loss, rel=1e-5)
    # The metrics log holds each step once, as if never interrupted.
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(ln)]
    assert steps == sorted(set(steps))


def test_bad_lines_are_counted_with_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_bytes(b'{"text": "ok one"}\n{not json}\n{"id": 3}\n\xff\xfe\n{"text": "  "}\n[1,2]\n{"text": "ok two"}\n')
    docs, stats = read_documents([f])
    assert [t for _, t in docs] == ["ok one", "ok two"]
    assert stats.skipped == {"invalid_json": 1, "missing_text": 1, "not_utf8": 1, "empty_text": 1, "not_object": 1}
    assert f"{f}:2: invalid_json" in stats.examples
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_documents([tmp_path / "nope.jsonl"])
