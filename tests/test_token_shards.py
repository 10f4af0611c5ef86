"""Token shards: the tokenize step (local and Ray executors, resume by shard), the checked reader,
the window sampler (permutation, mixture by sampling, per-rank split), the document mask, and the
bad inputs (another tokenizer, a truncated shard, an index that disagrees, an empty source)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from llm_recipe.config import PretrainConfig
from llm_recipe.config.curate import ExecutorConfig, MixingConfig
from llm_recipe.data.executor import ResumeMismatch
from llm_recipe.data.mixing import MixingError
from llm_recipe.data.token_shards import (
    ShardError,
    TokenShards,
    TokenShardWriter,
    token_dtype,
    tokenizer_sha256,
)
from llm_recipe.data.tokenize import tokenize_corpus
from llm_recipe.demo.sample_corpus import sample_corpus_files
from llm_recipe.splits import split_by_key
from llm_recipe.train.shard_data import DocumentMaskedLM, Permutation, pretrain_data


@pytest.fixture(scope="module")
def corpus(small_corpus_dir):
    return sample_corpus_files(small_corpus_dir)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, corpus, tokenizer):
    out = tmp_path_factory.mktemp("tokens") / "tokens"
    stats = tokenize_corpus(corpus, out, tokenizer, val_fraction=0.1, seed=3, batch_size=64)
    return out, stats


def _docs(files):
    return [json.loads(line) for f in files for line in open(f, encoding="utf-8")]


def test_shards_hold_every_document_with_eos_and_a_split_by_id(tokens, corpus, tokenizer):
    out, stats = tokens
    shards = TokenShards(out)
    assert shards.dtype == np.uint16 and shards.meta["tokenizer_sha256"] == tokenizer_sha256(tokenizer)
    docs = {d["id"]: d["text"] for d in _docs(corpus)}
    train, held = split_by_key(list(docs), lambda i: i, 0.1, seed=3)
    got = {"train": [], "val": []}
    for s in shards.streams:
        ids, off = np.asarray(s.ids), np.asarray(s.offsets)
        for a, b in zip(off[:-1], off[1:], strict=True):
            got[s.split].append(ids[a:b])
    assert len(got["train"]) == len(train) and len(got["val"]) == len(held) > 0
    # each document is BOS + its text + EOS, and decodes back to the text exactly (byte-level BPE)
    by_text = {tokenizer.decode(t[1:-1]): t for t in got["train"] + got["val"]}
    assert set(by_text) == set(docs.values())
    assert all(t[0] == tokenizer.bos_token_id and t[-1] == tokenizer.eos_token_id for t in by_text.values())
    held_texts = {tokenizer.decode(t[1:-1]) for t in got["val"]}
    assert held_texts == {docs[i] for i in held}
    per_source = stats["tokens"]["sources"]
    assert set(per_source) == {"web", "wiki", "books", "code", "qa"}
    assert sum(v["tokens"] for v in per_source.values()) == sum(s.tokens for s in shards.streams)
    assert 0.2 < per_source["web"]["tokens_per_char"] < 1.0
    saved = json.loads((out / "stats.json").read_text())
    assert saved["tokens"]["total"]["documents"] == len(docs) and saved["steps"]["tokenize"]["docs_out"] == len(docs)


def test_uint32_when_the_vocabulary_does_not_fit_uint16(tmp_path):
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    meta = {"format": "llm-recipe-token-shard", "version": 1, "tokenizer_sha256": "x", "dtype": "uint32",
            "eos_id": 70000, "bos_id": None, "vocab_size": 70001, "val_fraction": 0.0, "split_seed": 0, "tokenizer": ""}
    docs = [{"source": "s", "split": "train", "text": "ab", "text_tokens": 2,
             "tokens": np.array([69999, 12, 70000], np.uint32)}]
    with TokenShardWriter(tmp_path, "k", meta) as w:
        w.write(docs)
    s = TokenShards(tmp_path).streams[0]
    assert s.ids.dtype == np.uint32 and list(s.ids) == [69999, 12, 70000]
    assert (tmp_path / "k.s.train.bin").stat().st_size == 12


def test_tokenize_resumes_by_shard_and_names_a_changed_setting(tmp_path, corpus, tokenizer, tokens):
    out = tmp_path / "tokens"
    tokenize_corpus(corpus, out, tokenizer, val_fraction=0.1, seed=3, batch_size=64)
    headers = sorted((out / "data").glob("*.tokens.json"))
    web = next(h for h in headers if "web" in h.name)
    marker = next((out / ".state" / "seg-0" / "done").glob(f"{web.name.split('.')[0]}.json"))
    marker.unlink()  # as if killed before that shard finished: only it is done again
    before = {h: h.stat().st_mtime_ns for h in headers}
    tokenize_corpus(corpus, out, tokenizer, val_fraction=0.1, seed=3, batch_size=64)
    changed = [h for h in headers if h.stat().st_mtime_ns != before[h]]
    assert changed == [web]
    # the same bytes as the uninterrupted run
    for h in headers:
        ref = json.loads((tokens[0] / "data" / h.name).read_text())
        assert json.loads(h.read_text())["streams"] == ref["streams"]
    with pytest.raises(ResumeMismatch, match=r"\(val_fraction\)"):  # the curate command's rule
        tokenize_corpus(corpus, out, tokenizer, val_fraction=0.2, seed=3, batch_size=64)
    # a derived folder (the recipe's) is tokenized again instead
    redo = tokenize_corpus(corpus, out, tokenizer, val_fraction=0.2, seed=3, batch_size=64, redo_on_change=True)
    assert redo["tokens"]["total"]["val_tokens"] > tokens[1]["tokens"]["total"]["val_tokens"]


def test_ray_executor_writes_the_same_shards(tmp_path, corpus, tokenizer, tokens):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    stats = tokenize_corpus(corpus[:2], out, tokenizer, val_fraction=0.1, seed=3, batch_size=64,
                            executor=ExecutorConfig(backend="ray", workers=2, progress=False))
    assert stats["executor"] == "ray" and len(stats["outputs"]) == 2
    for h in (out / "data").glob("*.tokens.json"):
        assert json.loads(h.read_text())["streams"] == json.loads((tokens[0] / "data" / h.name).read_text())["streams"]


def test_permutation_is_a_seeded_bijection():
    for n in (1, 2, 3, 7, 64, 1000, 4097):
        p = Permutation(n, [0, 1])
        assert sorted(p(np.arange(n)).tolist()) == list(range(n))
    a, b = Permutation(1000, [0, 1])(np.arange(1000)), Permutation(1000, [0, 2])(np.arange(1000))
    assert (a != b).mean() > 0.9 and (Permutation(1000, [0, 1])(np.arange(1000)) == a).all()
    assert abs(np.corrcoef(np.arange(1000), a)[0, 1]) < 0.1  # not an ordered walk


def test_epochs_visit_every_window_once_in_a_new_order(tokens, tokenizer):
    data = pretrain_data(tokens[0], tokenizer, PretrainConfig(block_size=32))
    n = len(data.train)
    e0 = data.train.epoch_batches(seed=1, epoch=0, global_batch=4)
    e1 = data.train.epoch_batches(seed=1, epoch=1, global_batch=4)
    ids0 = np.concatenate([e0[b] for b in range(len(e0))])
    ids1 = np.concatenate([e1[b] for b in range(len(e1))])
    assert len(set(ids0.tolist())) == len(ids0) == (n // 4) * 4 and (ids0 != ids1).mean() > 0.9
    # a pure function of (seed, epoch, batch): what exact resume relies on
    assert (data.train.epoch_batches(seed=1, epoch=1, global_batch=4)[5] == e1[5]).all()
    # the loop gives rank r of w the items r::w of each global batch: disjoint, together the batch
    batch = e0[3]
    assert set(batch[0::2]) | set(batch[1::2]) == set(batch) and not set(batch[0::2]) & set(batch[1::2])
    w = data.train[int(ids0[0])]
    assert w.tokens.shape == (32,) and w.tokens.dtype == np.int64
    # validation windows come from held-out documents only
    assert len(data.val) > 0 and data.report["val_documents"] > 0


def test_mixture_is_applied_by_sampling_windows_without_copying(tmp_path, corpus, tokenizer):
    out = tmp_path / "mixed"
    mixing = MixingConfig(weights={"web": 0.5, "qa": 0.3, "code": 0.2}, token_budget=60_000, max_epochs=4)
    stats = tokenize_corpus(corpus, out, tokenizer, val_fraction=0.1, seed=0, mixing=mixing)
    plan = json.loads((out / "mixture.json").read_text())
    assert plan["unused_sources"] == ["books", "wiki"] and plan["sources"]["web"]["target_tokens"] == 30_000
    assert stats["mixture"] == plan
    data = pretrain_data(out, tokenizer, PretrainConfig(block_size=32))
    assert len(data.train) == 60_000 // 32
    batches = data.train.epoch_batches(seed=0, epoch=0, global_batch=8)
    ids = np.concatenate([batches[b] for b in range(len(batches))])
    names = np.array(data.train.names)[np.searchsorted(data.train.base, ids, "right") - 1]
    share = {s: float((names == s).mean()) for s in ("web", "qa", "code")}
    assert share == pytest.approx({"web": 0.5, "qa": 0.3, "code": 0.2}, abs=0.01)
    # web (2.2 epochs) repeats each of its windows twice or three times; code (0.7) is subsampled
    web, code = data.report["train"]["sources"]["web"], data.report["train"]["sources"]["code"]
    assert web["epochs"] > 2 and code["epochs"] < 1
    uses = np.bincount(ids[names == "web"] - data.train.base[data.train.names.index("web")])
    assert len(uses) == web["windows"] and set(uses.tolist()) <= {2, 3}
    assert len(set(ids[names == "code"].tolist())) == (names == "code").sum()
    assert not list(out.rglob("*mixed*"))  # nothing copied


def test_document_mask_equals_running_documents_separately(tokenizer):
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.train.pretrain import CausalLMObjective
    from llm_recipe.train.shard_data import Window

    model = build_preset_model("micro", tokenizer, seed=0).eval()
    docs = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in
            ("東京は日本の首都です。", "The capital of France is Paris.", "猫は魚を食べます。 Cats eat fish.")]
    packed = np.concatenate(docs)[:40]
    starts = np.cumsum([len(d) for d in docs])[:-1]
    window = Window(packed, starts[starts < 40])
    obj = DocumentMaskedLM()
    with torch.no_grad():
        masked = obj.loss(model, obj.collate([window]))[0].item()
        plain = CausalLMObjective().loss(model, CausalLMObjective().collate([window]))[0].item()
        nll, n = 0.0, 0
        for a, b in zip([0, *window.starts], [*window.starts, 40], strict=True):
            ids = torch.tensor(packed[a:b]).long()[None]
            nll += model(input_ids=ids, labels=ids).loss.item() * (b - a - 1)
            n += b - a - 1
    assert masked == pytest.approx(nll / n, rel=1e-4)
    assert abs(masked - plain) > 1e-3  # without the mask the documents see each other
    inside = Window(np.asarray((docs[1] * 4)[:40]), np.zeros(0, np.int64))  # no document starts in it
    batch = obj.collate([window, inside])
    assert batch["position_ids"][1].tolist() == list(range(40))
    assert int(batch["loss_tokens"]) == (40 - 1 - len(window.starts)) + (40 - 1)


# ---- bad input: one line naming the file, before any step ------------------------------------
@pytest.fixture()
def copy(tmp_path, tokens):
    dst = tmp_path / "copy"
    shutil.copytree(tokens[0], dst)
    return dst


def test_a_shard_of_another_tokenizer_is_refused(copy, tokenizer, tmp_path, corpus):
    from llm_recipe.tokenizer.train import train_and_save

    other = train_and_save((d["text"] for d in _docs(corpus)), tmp_path / "other", vocab_size=700)
    with pytest.raises(ShardError, match=r"\.tokens\.json: written by another tokenizer"):
        pretrain_data(copy, other, PretrainConfig(block_size=32))


def test_a_truncated_shard_is_named(copy, tokenizer):
    bin_ = sorted((copy / "data").glob("*web.train.bin"))[0]
    bin_.write_bytes(bin_.read_bytes()[:-2])
    with pytest.raises(ShardError, match=rf"{bin_.name}: truncated"):
        pretrain_data(copy, tokenizer, PretrainConfig(block_size=32))


def test_an_index_that_disagrees_with_its_shard_is_named(copy, tokenizer):
    idx = sorted((copy / "data").glob("*qa.train.idx"))[0]
    off = np.fromfile(idx, np.uint64)
    off[3], off[4] = off[4], off[3]
    off.tofile(idx)
    with pytest.raises(ShardError, match=rf"{idx.name}: index disagrees with its shard"):
        pretrain_data(copy, tokenizer, PretrainConfig(block_size=32))
    off[3], off[4] = off[4], off[3]
    off[-1] -= 1
    off.tofile(idx)
    with pytest.raises(ShardError, match=rf"{idx.name}: index disagrees .* last offset"):
        pretrain_data(copy, tokenizer, PretrainConfig(block_size=32))


def test_an_empty_source_is_named(tmp_path, corpus, tokenizer):
    empty = tmp_path / "legal.jsonl"
    empty.write_text("")
    stats = tokenize_corpus([*corpus[:1], empty], tmp_path / "t", tokenizer, val_fraction=0.1, seed=0)
    assert stats["steps"]["read"]["dropped"] == {"empty_file": 1}
    with pytest.raises(MixingError, match="'legal' has no documents"):
        tokenize_corpus([*corpus[:1], empty], tmp_path / "t", tokenizer, val_fraction=0.1, seed=0,
                        mixing=MixingConfig(weights={"legal": 1.0, corpus[0].stem: 1.0}, token_budget=1000))
    (tmp_path / "t" / "mixture.json").write_text(json.dumps(
        {"weights": {"legal": 0.5, corpus[0].stem: 0.5}, "token_budget": 1000, "max_epochs": 4}))
    with pytest.raises(ShardError, match=r"mixture\.json: .*'legal' has no documents"):
        pretrain_data(tmp_path / "t", tokenizer, PretrainConfig(block_size=32))


def test_the_cli_says_one_line_and_trains_nothing(copy, tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer
    from typer.testing import CliRunner

    from llm_recipe.cli import app
    from llm_recipe.models.presets import build_preset_model

    model_dir = tmp_path / "model"
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    build_preset_model("micro", tok, seed=0).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    bin_ = sorted((copy / "data").glob("*wiki.train.bin"))[0]
    bin_.write_bytes(bin_.read_bytes()[:-64])
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["pretrain", "--set", f"model.name_or_path={model_dir}", "--set",
                                   f"pretrain.token_data={copy}", "--set", "pretrain.max_steps=2", "-o", str(out)])
    assert res.exit_code == 2
    err = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and f"{bin_}: truncated" in err[0]
    assert not (out / "pretrain" / "model").exists() and not (out / "pretrain" / "checkpoints").exists()


def test_curate_with_a_tokenizer_writes_shards_and_samples_the_mixture(tmp_path, corpus, tokenizer_dir, tokenizer):
    from llm_recipe.config.curate import CurateConfig
    from llm_recipe.data.curate import curate

    cfg = CurateConfig.model_validate({
        "executor": {"workers": 1, "progress": False}, "language": {"enabled": False},
        "gopher_quality": {"enabled": False}, "gopher_repetition": {"enabled": False},
        "short_lines": {"enabled": False}, "char_ratios": {"enabled": False}, "hiragana": {"enabled": False},
        "mixing": {"weights": {"web": 0.5, "qa": 0.5}, "token_budget": 20000},
        "tokenize": {"tokenizer": str(tokenizer_dir), "val_fraction": 0.1}})
    res = curate(cfg, tmp_path / "curated", inputs=corpus, seed=0)
    assert res.mixture is None and not (tmp_path / "curated" / "mixed").exists()  # sampled, not copied
    assert res.tokens["mixture"]["sources"]["web"]["target_tokens"] == 10000
    assert res.tokens["tokens"]["total"]["documents"] == res.stats["docs_out"]
    data = pretrain_data(tmp_path / "curated" / "tokens", tokenizer, PretrainConfig(block_size=32))
    assert len(data.train) == 20000 // 32 and data.train.names == ["books", "code", "qa", "web", "wiki"]


def test_cli_pretrains_a_preset_model_on_given_shards_with_their_tokenizer(tokens, tmp_path):
    from typer.testing import CliRunner

    from llm_recipe.cli import app

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["pretrain", "-o", str(out), "--set", "model.preset=micro", "--set",
                                   f"pretrain.token_data={tokens[0]}", "--set", "pretrain.max_steps=2",
                                   "--set", "pretrain.block_size=32", "--set", "pretrain.batch_size=2",
                                   "--set", "pretrain.eval_every=2", "--set", "pretrain.eval_batches=1"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "pretrain" / "data_report.json").read_text())
    assert report["token_data"] == str(tokens[0]) and report["read"] is None
    assert not (out / "tokenizer").exists()  # the shards' tokenizer, not one trained on the sample corpus
    assert (out / "pretrain" / "model" / "model.safetensors").exists()
