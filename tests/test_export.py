"""Shipping a model (#31): GGUF at every dtype read back by transformers against the source, an
Ollama Modelfile whose template is checked against the Jinja one, a Hub-ready folder with its card's
metadata, LoRA adapters kept with their tokenizer (loadable by peft alone) and merged, `push`."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from llm_recipe.cli import app

gguf = pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory, tokenizer):
    """A micro Llama with ChatML, saved as a stage saves it (run.json beside model/)."""
    from transformers import AutoTokenizer

    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format

    run = tmp_path_factory.mktemp("run") / "sft"
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    apply_chat_format(tok, FORMATS["chatml"])
    model = build_preset_model("micro", tok, seed=0)
    with torch.no_grad():  # a model whose logits are not all ~0 (a fresh init's are), so the check means something
        for p in model.parameters():
            p.mul_(4.0) if p.ndim > 1 else None
    model.save_pretrained(run / "model")
    tok.save_pretrained(run / "model")
    (run / "run.json").write_text(json.dumps({"stage": "sft", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                                              "inputs": {"/data/my_sft.jsonl": "ab" * 32}}), encoding="utf-8")
    return run / "model"


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16", "q8_0"])
def test_gguf_at_every_dtype_loads_back_with_the_same_logits(dtype, chat_model, tmp_path):
    from llm_recipe.ship.gguf_export import TOLERANCE, check_gguf, write_gguf

    rep = write_gguf(chat_model, tmp_path / "m.gguf", dtype)
    check = check_gguf(chat_model, tmp_path / "m.gguf", dtype)
    assert check["relative"] <= TOLERANCE[dtype] and check["same_tokens"] and check["same_chat_template"]
    assert check["same_argmax"]
    if dtype == "f32":
        assert check["max_logit_difference"] < 1e-4
    reader = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    names = {t.name for t in reader.tensors}
    assert "output.weight" not in names and "token_embd.weight" in names  # tied embedding, as llama.cpp writes it
    kinds = {t.tensor_type.name for t in reader.tensors if t.name.endswith("attn_q.weight")}
    assert kinds == {dtype.upper()}
    template = reader.fields["tokenizer.chat_template"]
    assert "<|im_start|>" in bytes(template.parts[template.data[0]]).decode()
    from transformers import AutoTokenizer

    assert rep["tokens"] == len(AutoTokenizer.from_pretrained(chat_model))


def test_the_check_catches_a_wrong_rotary_layout(chat_model, tmp_path, monkeypatch):
    """Without llama.cpp's q/k permutation the file loads, but its logits are wrong: the check says so."""
    from llm_recipe.ship import gguf_export

    monkeypatch.setattr(gguf_export, "_permute", lambda w, n_head: w)
    gguf_export.write_gguf(chat_model, tmp_path / "bad.gguf", "f32")
    with pytest.raises(gguf_export.ExportError, match="does not match"):
        gguf_export.check_gguf(chat_model, tmp_path / "bad.gguf", "f32")


def test_export_ollama_writes_gguf_and_a_checked_modelfile(chat_model, tmp_path):
    out = tmp_path / "ollama"
    res = CliRunner().invoke(app, ["export", str(chat_model), "--to", "ollama", "--dtype", "q8_0", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = (out / "Modelfile").read_text()
    gguf_name = next(p.name for p in out.glob("*.gguf"))
    assert f"FROM ./{gguf_name}" in text and 'PARAMETER stop "<|im_end|>"' in text
    assert 'TEMPLATE """{{- range $i, $_ := .Messages }}' in text and "PARAMETER temperature 0.8" in text
    rep = json.loads((out / "export_report.json").read_text())
    assert rep["check"]["same_tokens"] and rep["ollama"]["template"].startswith("ChatML, checked")


def test_template_translation_default_system_and_refusal(tokenizer):
    """SmolLM2's template (ChatML that adds its own system turn) -> SYSTEM; Alpaca -> no TEMPLATE, said why."""
    from transformers import AutoTokenizer

    from llm_recipe.ship.ollama import translate_template
    from llm_recipe.tokenizer.chat_formats import FORMATS

    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                         "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM<|im_end|>\n' }}{% endif %}"
                         "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    template, system, why = translate_template(tok)
    assert template is not None and system == "You are a helpful AI assistant named SmolLM"
    tok.chat_template = FORMATS["alpaca_en"].template
    template, system, why = translate_template(tok)
    assert template is None and "not ChatML-shaped" in why


def test_hub_folder_has_weights_tokenizer_and_a_card_with_hub_metadata(chat_model, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "hub"
    res = CliRunner().invoke(app, ["export", str(chat_model), "--to", "hub-folder", "-o", str(out),
                                   "--license", "apache-2.0"])
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "complete.json"} <= names
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.license == "apache-2.0"
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert card.data.datasets == ["my_sft.jsonl@sha256:" + "ab" * 6]
    AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).chat_template


def test_model_card_carries_the_eval_row_as_model_index(chat_model, tmp_path):
    from huggingface_hub import ModelCard

    from llm_recipe.report.model_card import card_data

    row = {"win_rate_rm": {"win_rate": 0.62}, "safety": {"refusal_rate": 0.75, "over_refusal_rate": 0.1},
           "kl": {"kl": 1.5}, "format": {"not_run": "no chat format"}}
    data = card_data({"stage": "dpo", "base_model": "org/base", "inputs": {}}, "dpo", ("dpo", row), "mit")
    card = ModelCard("---\n" + data.to_yaml() + "\n---\n\n# dpo\n")
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"win_rate": 0.62, "refusal_rate": 0.75, "over_refusal_rate": 0.1, "kl": 1.5}
    assert card.data.model_name == "dpo" and "model-index" in data.to_yaml()


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tokenizer):
    """SFT with LoRA (lora.save: both) through the CLI on a micro base model without a chat format."""
    from llm_recipe.models.presets import build_preset_model

    root = tmp_path_factory.mktemp("lora")
    base = root / "base"
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    data = root / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Q{i}?"},
                                                     {"role": "assistant", "content": f"A{i}."}]}) + "\n"
                            for i in range(64)), encoding="utf-8")
    res = CliRunner().invoke(app, ["sft", "-m", str(base), "-d", str(data), "-o", str(root / "run"), "--max-steps", "2",
                                   "--batch-size", "4", "--set", "sft.lora.r=4", "--set", "sft.lora.lora_alpha=8",
                                   "--set", "sft.eval_batches=1", "--set", "sft.demo_prompts=[hi]",
                                   "--set", "generate.sampling.max_new_tokens=2"])
    assert res.exit_code == 0, res.output
    return base, root / "run" / "sft"


@torch.no_grad()
def test_lora_adapter_is_kept_with_its_tokenizer_and_loads_with_peft_alone(lora_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, sft = lora_run
    adapter = sft / "adapter"
    tok = AutoTokenizer.from_pretrained(adapter)  # the adapter's own vocabulary (ChatML's added tokens)
    assert "<|im_start|>" in tok.get_vocab()
    plain = AutoModelForCausalLM.from_pretrained(base)
    plain.resize_token_embeddings(len(tok))
    peft_model = PeftModel.from_pretrained(plain, adapter).eval()
    merged = AutoModelForCausalLM.from_pretrained(sft / "model").eval()
    ids = torch.tensor([tok(tok.apply_chat_template([{"role": "user", "content": "Q1?"}], add_generation_prompt=True,
                                                    tokenize=False), add_special_tokens=False)["input_ids"]])
    assert torch.allclose(peft_model(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)
    # llm-recipe merge: the same model, checked against the unmerged one
    res = CliRunner().invoke(app, ["merge", str(adapter), "-o", str(tmp_path / "merged")])
    assert res.exit_code == 0, res.output
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert torch.allclose(again(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)
    # export --adapter-only: the adapter, its tokenizer and a peft card
    res = CliRunner().invoke(app, ["export", str(sft / "model"), "--to", "hub-folder", "--adapter-only",
                                   "-o", str(tmp_path / "adapter_hub")])
    assert res.exit_code == 0, res.output
    names = {p.name for p in (tmp_path / "adapter_hub").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= names
    assert "library_name: peft" in (tmp_path / "adapter_hub" / "README.md").read_text()


def test_push_dry_run_and_offline(chat_model, monkeypatch):
    res = CliRunner().invoke(app, ["push", str(chat_model), "me/tiny-chat", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "model.safetensors" in res.output and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in res.output
    assert "complete.json" not in res.output and "export_report.json" not in res.output  # our bookkeeping stays
    assert "dry run: " in res.output and "private repo me/tiny-chat; nothing uploaded" in res.output
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    res = CliRunner().invoke(app, ["push", str(chat_model), "me/tiny-chat"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert [ln for ln in res.output.splitlines() if ln.startswith("error:")] == [
        "error: push me/tiny-chat: offline (HF_HUB_OFFLINE is set): nothing uploaded; --dry-run shows what would be"]


@pytest.fixture
def fake_hub(tmp_path):
    """tests/fake_hub.py as its own process on a free local port: (endpoint, store folder)."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path / "hub-store"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fake_hub.py")), str(port), str(store)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}", store
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_push_uploads_the_hub_folder_to_a_private_repo(chat_model, fake_hub, monkeypatch):
    """Against a local hub process (HF_ENDPOINT): the repo is created private, every file of the
    Hub folder arrives byte for byte, our bookkeeping files stay home, the token is sent, not written."""
    import huggingface_hub.constants as hc

    endpoint, store = fake_hub
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    res = CliRunner().invoke(app, ["push", str(chat_model), "me/tiny-chat", "--license", "mit"])
    assert res.exit_code == 0, res.output
    assert f"pushed to {endpoint}/me/tiny-chat (private, commit {'1' * 40})" in res.output
    repo = json.loads((store / "me" / "tiny-chat.json").read_text())
    assert repo["visibility"] == "private" and repo["auth"] == "Bearer hf_test_token_not_real"
    got = {p.name for p in (store / "me" / "tiny-chat").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= got
    assert not got & {"complete.json", "export_report.json", "run.json"}
    assert (store / "me" / "tiny-chat" / "model.safetensors").read_bytes() == (chat_model / "model.safetensors").read_bytes()
    assert "license: mit" in (store / "me" / "tiny-chat" / "README.md").read_text()
    assert "hf_test_token_not_real" not in "".join(p.read_text(errors="ignore") for p in (store / "me" / "tiny-chat").iterdir())


def test_gguf_of_a_grouped_query_model_like_smollm2(tmp_path, tokenizer):
    """SmolLM2's shape: fewer key/value heads than query heads (9 / 3), an explicit head_dim: the key
    projection is permuted per key/value head, and the file reads back exactly (f32)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llm_recipe.ship.gguf_export import check_gguf, write_gguf
    from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format

    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    apply_chat_format(tok, FORMATS["chatml"])
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=72, num_hidden_layers=2, num_attention_heads=9,
                      num_key_value_heads=3, head_dim=8, intermediate_size=96, rope_theta=100000.0,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0) if p.ndim > 1 else None
    model.save_pretrained(tmp_path / "gqa")
    tok.save_pretrained(tmp_path / "gqa")
    write_gguf(tmp_path / "gqa", tmp_path / "gqa.gguf", "f32")
    check = check_gguf(tmp_path / "gqa", tmp_path / "gqa.gguf", "f32")
    assert check["max_logit_difference"] < 1e-4 and check["same_argmax"]
