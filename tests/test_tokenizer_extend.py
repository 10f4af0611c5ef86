"""Tokenizer extension for continued pretraining: tokens learned from Japanese text are appended as
BPE merges to an English byte-level BPE; new embedding rows are the mean of their old pieces' rows."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llm_recipe.demo.sample_corpus import sample_corpus_files
from llm_recipe.tokenizer.extend import (
    base_pieces,
    extend_and_save,
    extension_info,
    grow_embeddings,
)
from llm_recipe.tokenizer.train import train_bpe_tokenizer


def _is_ja(text: str) -> bool:
    return sum("\u3040" <= c <= "\u30ff" for c in text) > 5


@pytest.fixture(scope="module")
def extended(tmp_path_factory, small_corpus_dir):
    docs = [json.loads(line)["text"] for f in sample_corpus_files(small_corpus_dir)
            for line in f.read_text(encoding="utf-8").splitlines()]
    ja, en = [d for d in docs if _is_ja(d)], [d for d in docs if not _is_ja(d)]
    base = train_bpe_tokenizer(en, vocab_size=600)  # an English tokenizer: Japanese falls apart into bytes
    out = tmp_path_factory.mktemp("extended")
    tok, info = extend_and_save(base, ja[:-40], out, new_tokens=300, min_frequency=2)
    return base, tok, info, ja[-40:], en[-40:]


def _chars_per_token(tok, texts):
    return sum(len(t) for t in texts) / sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)


def test_extension_adds_learned_tokens_and_keeps_the_base(extended):
    base, tok, info, ja_held, en_held = extended
    assert info["added"] == 300 == len(tok) - len(base) and info["used_on_corpus"] > 100
    assert _chars_per_token(tok, ja_held) > 1.5 * _chars_per_token(base, ja_held)  # held-out Japanese
    for text in ja_held[:10] + en_held[:10]:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # exact round trip
    # the base's ids and special tokens are untouched; English only gains merges (never more tokens)
    assert {k: v for k, v in tok.get_vocab().items() if v < len(base)} == base.get_vocab()
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (base.bos_token_id, base.eos_token_id,
                                                                       base.pad_token_id)
    assert all(len(tok(t)["input_ids"]) <= len(base(t)["input_ids"]) for t in en_held)
    plain = "The staff were kind and the prices were fair."
    assert tok(plain)["input_ids"] == base(plain)["input_ids"]
    assert extension_info(tok)["base_vocab_size"] == len(base)


def test_new_rows_are_the_mean_of_their_base_pieces(extended):
    base, tok, info, _, _ = extended
    pieces = base_pieces(tok, info)
    new_id = len(base) + 5
    assert len(pieces[new_id]) >= 2 and "".join(base.convert_ids_to_tokens(pieces[new_id])) == \
        tok.convert_ids_to_tokens(new_id)
    for tied in (True, False):
        cfg = LlamaConfig(vocab_size=len(base), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          num_key_value_heads=2, intermediate_size=64, tie_word_embeddings=tied)
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg)
        old_in = model.get_input_embeddings().weight.detach().clone()
        old_out = model.get_output_embeddings().weight.detach().clone()
        assert grow_embeddings(model, tok) == 300
        emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        assert emb.shape[0] == head.shape[0] == len(tok) and model.config.vocab_size == len(tok)
        torch.testing.assert_close(emb[: len(base)], old_in)  # old rows unchanged
        for i in (new_id, len(tok) - 1):
            torch.testing.assert_close(emb[i], old_in[pieces[i]].mean(0))
            torch.testing.assert_close(head[i], (old_in if tied else old_out)[pieces[i]].mean(0))
        assert (head.data_ptr() == emb.data_ptr()) == tied


def test_recipe_extends_the_model_tokenizer_then_pretrains_on_shards(extended, tmp_path, small_corpus_dir):
    """`tokenizer.extend` with `model.name_or_path`: the tokenizer stage extends the model's tokenizer
    from the corpus, pretraining grows the embedding from the pieces' mean and trains on shards of
    the extended ids."""
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from llm_recipe.cli import app
    from llm_recipe.models.presets import build_preset_model

    base = extended[0]
    start = tmp_path / "start"
    model = build_preset_model("micro", base, seed=0)
    model.save_pretrained(start)
    base.save_pretrained(start)
    files = ",".join(str(f) for f in sample_corpus_files(small_corpus_dir))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["pretrain", "-o", str(out), "--set", f"model.name_or_path={start}",
                                   "--set", f"pretrain.data=[{files}]", "--set", "tokenizer.extend.new_tokens=200",
                                   "--set", "pretrain.max_steps=2", "--set", "pretrain.block_size=64",
                                   "--set", "pretrain.batch_size=2", "--set", "pretrain.eval_every=2",
                                   "--set", "pretrain.eval_batches=1", "--set", "pretrain.warmup_steps=0"])
    assert res.exit_code == 0, res.output
    info = json.loads((out / "tokenizer" / "extension.json").read_text())
    assert info["added"] == 200 and info["base_vocab_size"] == len(base)
    header = json.loads(next((out / "pretrain" / "tokens" / "data").glob("*.tokens.json")).read_text())
    assert header["vocab_size"] == len(base) + 200
    weights = load_file(out / "pretrain" / "model" / "model.safetensors")
    assert weights["model.embed_tokens.weight"].shape[0] == len(base) + 200
