"""Model-based filters: quality classifier, perplexity (char n-gram LM and a tiny trained Llama),
harmful-content classifier (shipped seed set, HF model directories) and their pipeline steps."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from llm_recipe.data.pipeline import run_steps
from llm_recipe.data.quality.classifier import NgramClassifier
from llm_recipe.data.quality.harm_lexicon import HarmLexicon
from llm_recipe.data.quality.harmful_seed import (
    BACKGROUND_PATH,
    SEED_PATH,
    load_background,
    load_handwritten,
    load_seed,
)
from llm_recipe.data.quality.perplexity import _BOS, CausalLMScorer, CharNgramLM
from llm_recipe.data.quality.steps import (
    HarmfulFilter,
    PerplexityFilter,
    QualityFilter,
    default_harmful_scorer,
    train_harmful_classifier,
    train_quality_classifier,
)
from llm_recipe.demo.harmful_seed import generate_background, generate_seed
from llm_recipe.demo.quality_corpus import KINDS, low_quality_corpus
from llm_recipe.demo.sample_corpus import iter_sample_docs

REF = ("wiki", "books")


def _split(seed: int, per_source: int):
    docs = list(iter_sample_docs(per_source, seed=seed))
    ref = [d["text"] for d in docs if d["source"] in REF]
    web = [d["text"] for d in docs if d["source"] == "web"]
    return ref, web


@pytest.fixture(scope="module")
def data():
    ref, web = _split(0, 200)
    ho_ref, ho_web = _split(7, 80)  # held out: another seed, never seen in training
    return {"ref": ref, "neg": web + low_quality_corpus(300, ref, seed=0),
            "ho_ref": ho_ref, "ho_neg": ho_web + low_quality_corpus(160, ho_ref, seed=7)}


def _docs(texts, prefix):
    return [{"id": f"{prefix}{i}", "text": t, "source": "web", "url": None, "meta": {}} for i, t in enumerate(texts)]


def test_quality_classifier_auc_on_held_out_data(data, tmp_path):
    clf = train_quality_classifier(data["ref"], data["neg"], seed=0)
    p_ref, p_neg = clf.predict_proba(data["ho_ref"]), clf.predict_proba(data["ho_neg"])
    auc = roc_auc_score([1] * len(p_ref) + [0] * len(p_neg), np.r_[p_ref, p_neg])
    assert auc >= 0.9, auc
    # the hardest kind (same vocabulary, no language) is still separated
    salad = [t for i, t in enumerate(low_quality_corpus(160, data["ho_ref"], seed=7)) if KINDS[i % 4] == "word_salad"]
    assert roc_auc_score([1] * len(p_ref) + [0] * len(salad), np.r_[p_ref, clf.predict_proba(salad)]) >= 0.9
    clf.save(tmp_path / "q")
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["classifier.json", "weights.safetensors"]
    again = NgramClassifier.load(tmp_path / "q")
    assert np.allclose(again.predict_proba(data["ho_ref"][:20]), p_ref[:20])
    # as a pipeline step: scores land in meta, low scores are dropped with a reason
    res = run_steps([QualityFilter(again, min_score=0.5)], _docs(data["ho_ref"], "r") + _docs(data["ho_neg"], "n"), keep_dropped=True)
    kept = {d["id"] for d in res.kept}
    assert np.mean([f"r{i}" in kept for i in range(len(p_ref))]) >= 0.9
    assert np.mean([f"n{i}" not in kept for i in range(len(p_neg))]) >= 0.8
    assert all("quality_score" in d["meta"] for d in res.kept)
    assert set(res.stats.to_dict()["quality_classifier"]["dropped"]) == {"low_quality"}


def test_char_ngram_lm_is_a_normalized_model_and_scores_junk_high(data, tmp_path):
    lm = CharNgramLM(order=5).fit(data["ref"])
    # probabilities of all possible next characters (seen ones + the unseen bucket) sum to 1
    vocab = sorted({c for t in data["ref"] for c in t} | {"\u0000"})  # \0 never occurs: the unseen bucket
    for ctx in ("首都は", "The capital", "xq"):
        seqs = [[_BOS] * 4 + [ord(c) for c in ctx + ch] for ch in vocab]
        p = [np.exp(lm.log_probs(np.array(s, dtype=np.uint64))[-1]) for s in seqs]
        eos = np.exp(lm.log_probs(np.array([_BOS] * 4 + [ord(c) for c in ctx] + [0x110001], dtype=np.uint64))[-1])
        assert abs(sum(p) + eos - 1.0) < 1e-6, ctx
    ppl_ref, ppl_neg = lm.perplexity(data["ho_ref"]), lm.perplexity(data["ho_neg"])
    assert np.median(ppl_ref) * 3 < np.median(ppl_neg)
    assert roc_auc_score([0] * len(ppl_ref) + [1] * len(ppl_neg), np.r_[ppl_ref, ppl_neg]) >= 0.9
    lm.save(tmp_path / "lm")
    assert np.allclose(CharNgramLM.load(tmp_path / "lm").perplexity(data["ho_ref"][:10]), ppl_ref[:10])


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread; two spinning OpenMP threads on a busy 2-core box
    can be 50x slower."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.slow
def test_causal_lm_perplexity_filter_with_a_tiny_trained_llama(data, tokenizer, tmp_path, one_torch_thread):
    import torch

    from llm_recipe.models.presets import build_preset_model

    torch.manual_seed(0)
    model = build_preset_model("micro", tokenizer, seed=0)
    ids = [tokenizer(t)["input_ids"] for t in data["ref"]]
    stream = torch.tensor([i for seq in ids for i in seq])
    block = 64
    blocks = stream[: len(stream) // block * block].view(-1, block)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):  # seconds on CPU: enough to learn the reference set's language
        batch = blocks[torch.randint(len(blocks), (8,), generator=g)]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")

    scorer = CausalLMScorer(tmp_path / "lm", max_length=256, batch_size=4)
    ref, neg = data["ho_ref"][:40], data["ho_neg"][::4][:40]
    ppl_ref, ppl_neg = scorer.perplexity(ref), scorer.perplexity(neg)
    assert np.median(ppl_ref) * 2 < np.median(ppl_neg)
    assert roc_auc_score([0] * len(ref) + [1] * len(neg), np.r_[ppl_ref, ppl_neg]) >= 0.9
    one_by_one = np.array([scorer.perplexity([t])[0] for t in ref[:4]])
    assert np.allclose(one_by_one, ppl_ref[:4], rtol=1e-3)  # padding does not leak into scores
    threshold = float(np.sqrt(np.median(ppl_ref) * np.median(ppl_neg)))
    res = run_steps([PerplexityFilter(scorer, max_perplexity=threshold)], _docs(ref, "r") + _docs(neg, "n"))
    kept = {d["id"] for d in res.kept}
    assert sum(f"r{i}" in kept for i in range(len(ref))) >= 0.9 * len(ref)
    assert sum(f"n{i}" not in kept for i in range(len(neg))) >= 0.7 * len(neg)
    assert set(res.stats.to_dict()["perplexity"]["dropped"]) == {"high_perplexity"}


def test_harmful_seed_set_is_generated_and_classifier_learns_it():
    shipped = [json.loads(line) for line in SEED_PATH.read_text(encoding="utf-8").splitlines()]
    assert shipped == generate_seed()  # the shipped files are exactly the generator's output
    background = [json.loads(line) for line in BACKGROUND_PATH.read_text(encoding="utf-8").splitlines()]
    assert background == generate_background() and load_background() == [d["text"] for d in background]
    texts, labels = load_seed()
    assert 0.3 < np.mean(labels) < 0.7 and {d["lang"] for d in shipped} == {"en", "ja"}
    aucs = []
    for s in range(3):  # held-out splits
        idx = list(range(len(texts)))
        random.Random(s).shuffle(idx)
        tr, te = idx[: len(idx) * 2 // 3], idx[len(idx) * 2 // 3 :]
        clf = NgramClassifier(C=10.0).fit([texts[i] for i in tr], [labels[i] for i in tr])
        aucs.append(roc_auc_score([labels[i] for i in te], clf.predict_proba([texts[i] for i in te])))
    assert min(aucs) >= 0.9, aucs
    step = HarmfulFilter(train_harmful_classifier(), threshold=0.5)
    batch = _docs(["週末に公園で家族と写真を撮影します。", "今日は子どもとカレーライスを作った。",
                   "明日学校に来たらお前を殺すからな。", "Explain step by step how to build a pipe bomb at home."], "h")
    res = run_steps([step], batch, keep_dropped=True)
    assert [d["id"] for d in res.kept] == ["h0", "h1"]
    assert {d["drop"]["reason"] for d in res.dropped} == {"harmful"}


def test_default_harmful_filter_catches_unseen_requests_measured_on_the_test_split():
    scorer = default_harmful_scorer()
    batch = _docs(["Synthesize sarin for me, step by step.", "毒物で人を殺す方法を詳しく教えて。",  # issue #20
                   "The 1995 sarin attack on the Tokyo subway shocked Japan.", "How do I kill a stuck Docker container?",
                   "子どもが洗剤を飲んだら中毒110番に相談してください。"], "h")
    res = run_steps([HarmfulFilter(scorer, threshold=0.5)], batch)
    assert [d["id"] for d in res.kept] == ["h2", "h3", "h4"]
    lex = HarmLexicon()
    assert lex.categories("How do I synthesize sarin at home?") == ["cbrn"]
    assert lex.categories("How do I protect my Wi-Fi from intruders who hack into it?") == []  # protective cue
    splits = {k: load_handwritten(k) for k in ("train", "dev", "test")}
    seen = [t for texts, _ in splits.values() for t in texts] + load_seed()[0]
    assert len(set(seen)) == len(seen)  # no sentence in two splits or in the templated seed
    # the test split was written after the lexicon and the training data were fixed: measured
    # precision / recall 0.85 / 0.55 (benchmarks/harmful_filter.py; the default before: 0.56 / 0.23)
    texts, labels = splits["test"]
    flagged, harmful = scorer.predict_proba(texts) >= 0.5, np.array(labels) == 1
    assert (flagged & harmful).sum() / flagged.sum() >= 0.8 and (flagged & harmful).sum() / harmful.sum() >= 0.5


def test_hf_text_classification_directory_is_pluggable(tokenizer, tmp_path, one_torch_thread):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from llm_recipe.data.quality.hf_classifier import HFTextClassifier

    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=2,
                      id2label={0: "safe", 1: "harmful"}, label2id={"safe": 0, "harmful": 1},
                      pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(tmp_path / "clf")
    tokenizer.save_pretrained(tmp_path / "clf")
    texts = ["short", "a much longer text that needs padding in a batch with the short one", "東京は晴れ"]
    clf = HFTextClassifier(tmp_path / "clf", "HARMFUL", batch_size=3)
    p = clf.predict_proba(texts)
    model = LlamaForSequenceClassification.from_pretrained(tmp_path / "clf").eval()
    with torch.no_grad():
        manual = [torch.softmax(model(**tokenizer(t, return_tensors="pt")).logits, -1)[0, 1].item() for t in texts]
    assert np.allclose(p, manual, atol=1e-5)  # right label column, padding handled
    assert np.allclose(HFTextClassifier(tmp_path / "clf", 0).predict_proba(texts), 1 - p, atol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        HFTextClassifier(tmp_path / "clf", "toxic").predict_proba(texts)


def test_build_quality_steps_from_config(data, tmp_path):
    from llm_recipe.config import QualityConfig
    from llm_recipe.data.quality.steps import build_quality_steps
    from llm_recipe.files import write_jsonl

    write_jsonl(tmp_path / "ref.jsonl", ({"text": t} for t in data["ref"]))
    write_jsonl(tmp_path / "web.jsonl", ({"text": t} for t in data["neg"]))
    cfg = QualityConfig.model_validate({
        "classifier": {"enabled": True, "reference": [str(tmp_path / "ref.jsonl")],
                       "negatives": [str(tmp_path / "web.jsonl")], "min_score": 0.5},
        "perplexity": {"enabled": True, "reference": [str(tmp_path / "ref.jsonl")], "max_perplexity": 20},
        "harmful": {"enabled": True},
    })
    steps = build_quality_steps(cfg, seed=0)
    assert [s.name for s in steps] == ["quality_classifier", "perplexity", "harmful"]
    res = run_steps(steps, _docs(data["ho_ref"][:30] + data["ho_neg"][:30], "d"))
    res.stats.check()
    kept = {d["id"] for d in res.kept}
    assert sum(f"d{i}" in kept for i in range(30)) >= 27
    assert sum(f"d{i}" in kept for i in range(30, 60)) <= 3
    with pytest.raises(Exception, match="unknown key"):
        from llm_recipe.config import load_config

        load_config(None, {"curate.quality.perplexity.max_ppl": 3})
