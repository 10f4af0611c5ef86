"""The bundled two-turn question set (mt-bench-v1) and the eval stage's MT-Bench: every model of a
run answers both turns, a judge grades them 1-10 and compares each model with its reference, and the
report says which judge it was and how biased."""

import json
import shutil
from collections import Counter, defaultdict

import pytest
from serve_helpers import FakeEndpoint
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.demo.style import STYLE_PREFIX
from llm_recipe.eval.mt_bench import CATEGORIES, NEEDS_REFERENCE, load_mt_bench

KEY = "sk-mt-bench-91d0c3"


def test_the_bundled_set_schema_counts_and_references():
    qs = load_mt_bench().items  # validated whole: schema, categories, two turns, references, unique ids
    counts = Counter((q.category, q.lang) for q in qs)
    assert set(counts) == {(c, lang) for c in CATEGORIES for lang in ("en", "ja")}
    assert min(counts.values()) >= 10 and len(qs) >= 160
    assert len({q.id for q in qs}) == len(qs)
    assert len({q.turns[0] for q in qs}) == len(qs)  # no question twice
    for q in qs:
        assert len(q.turns) == 2
        if q.category in NEEDS_REFERENCE:
            assert q.reference and all(r and r.strip() for r in q.reference), q.id
        japanese = any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in q.turns[0] + q.turns[1])
        assert japanese == (q.lang == "ja"), q.id
    assert [q.id for q in load_mt_bench(per_category=1, languages=["ja"]).items] == \
        [f"ja-{c}-01" for c in CATEGORIES]


@pytest.mark.parametrize("record,error", [
    ({"id": "m1", "lang": "en", "category": "math", "turns": ["1+1?", "2+2?"]}, "needs a reference answer"),
    ({"id": "m1", "lang": "en", "category": "poetry", "turns": ["a", "b"]}, "'category' must be one of"),
    ({"id": "m1", "lang": "en", "category": "stem", "turns": ["only one"]}, "two non-empty strings"),
])
def test_a_bad_question_file_is_one_line_naming_the_line(tmp_path, record, error):
    f = tmp_path / "q.jsonl"
    ok = {"id": "w1", "lang": "en", "category": "writing", "turns": ["a", "b"]}
    f.write_text(json.dumps(ok) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=rf"q.jsonl:2: .*{error}"):
        load_mt_bench(f)
    f.write_text(json.dumps(ok) + "\n" + json.dumps(ok) + "\n")
    with pytest.raises(ValueError, match=r"q.jsonl:2: duplicate id 'w1' \(first at .*q.jsonl:1\)"):
        load_mt_bench(f)


def test_grades_pairwise_and_consistency_of_a_scripted_judge(tmp_path):
    """MTBench's aggregation against a judge whose every answer is known (a real HTTP endpoint)."""
    from llm_recipe.config import ComputeConfig, JudgeEndpointConfig
    from llm_recipe.eval.mt_bench import MTBench
    from llm_recipe.preference.text_judge import chat_backend

    bench = MTBench(load_mt_bench(per_category=2))
    styled = {"writing", "roleplay", "math"}  # model "a" answers these in the preferred style, "b" never
    bench.answers["a"] = [((STYLE_PREFIX if q.category in styled else "") + "one", "two") for q in bench.questions]
    bench.answers["b"] = [("one", "two") for _ in bench.questions]
    with FakeEndpoint(prefer=STYLE_PREFIX.strip(), first_bias=1.0) as fe:
        backend = chat_backend(JudgeEndpointConfig(base_url=fe.base, model="judge-x"), ComputeConfig(),
                               tmp_path / "cache.jsonl")
        out = bench.judge(backend, [("a", "b")], identity=backend.identity(), paths={"a": None, "b": None},
                          regrade=10, pairwise=True, n_boot=200, seed=0)
    a, b = out["models"]["a"], out["models"]["b"]
    assert {c: a["by_category"][c] for c in styled} == {c: 6.0 for c in styled}  # turn 1 graded 9, turn 2 3
    assert all(a["by_category"][c] == 3.0 for c in CATEGORIES if c not in styled) and b["score"] == 3.0
    assert a["by_turn"] == {"1": pytest.approx(3 + 6 * 12 / 32), "2": 3.0} and a["graded"] == 64
    assert out["consistency"] == {"regraded": 10, "both_readable": 10, "same_score": 1.0, "mean_abs_diff": 0.0}
    pw = out["pairwise"]["a"]
    assert (pw["wins"], pw["ties"], pw["losses"]) == (12, 20, 0)  # the styled questions won; ties count half
    assert pw["first_position_rate"] == pytest.approx((32 + 20) / 64)  # "A" both ways when it has no preference
    assert pw["agreement_with_grades"] == {"share": 1.0, "n": 12}
    assert out["bias"]["length_correlation"] > 0.5 and out["bias"]["self_judged"] == []
    kinds = [r["kind"] for r in bench.records]
    assert kinds.count("grade") == 128 and kinds.count("pairwise") == 32


EVAL = [f"--set={kv}" for kv in ("eval.mt_bench.per_category=1", "eval.mt_bench.max_new_tokens=6",
                                 "eval.mt_bench.judge_max_new_tokens=8", "eval.mt_bench.regrade=6")]


def _scripted(answer: str) -> float:
    return 9.0 if answer.startswith(STYLE_PREFIX.strip()) else 3.0


def test_eval_runs_mt_bench_for_every_model_with_an_endpoint_judge(tiny_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    monkeypatch.setenv("MT_JUDGE_KEY", KEY)
    with FakeEndpoint(prefer=STYLE_PREFIX.strip(), first_bias=1.0) as fe:
        res = CliRunner().invoke(app, ["eval", str(run), "--force", *EVAL, "--set", f"eval.judge.base_url={fe.base}",
                                       "--set", "eval.judge.model=judge-x", "--set", "eval.judge.api_key_env=MT_JUDGE_KEY",
                                       "--set", "eval.judge.concurrency=2"])
        assert res.exit_code == 0, res.output
        requests = fe.chat_requests
    report = json.loads((run / "eval" / "report.json").read_text())
    mt = report["mt_bench"]
    answers = [json.loads(x) for x in (run / "eval" / "mt_bench_answers.jsonl").read_text().splitlines()]
    models = {a["model"] for a in answers}
    assert models == set(mt["models"]) and {"base", "sft", "dpo"} <= models  # every model that generates
    assert mt["set"]["items"] == 16 and len(answers) == len(models) * 32
    # the grades are the (scripted) judge's, aggregated per model and category
    expected = defaultdict(list)
    for a in answers:
        expected[a["model"], a["category"]].append(_scripted(a["answer"]))
    for (m, c), grades in expected.items():
        assert mt["models"][m]["by_category"][c] == pytest.approx(sum(grades) / len(grades))
    assert all(m["graded"] == 32 and m["unparseable"] == 0 for m in mt["models"].values())
    assert mt["consistency"] == {"regraded": 6, "both_readable": 6, "same_score": 1.0, "mean_abs_diff": 0.0}
    # pairwise: each model vs its reference, both orders; the judge picks A when it has no preference
    pairs = [(m, r["reference"]) for m, r in mt["pairwise"].items()]
    assert ("sft", "base") in pairs and all(r == "sft" for m, r in pairs if m not in ("sft",))
    # grades, regrades, MT-Bench and held-out pairwise in both orders (a request asked twice is sent once)
    assert requests <= len(models) * 32 + 6 + 2 * 16 * len(pairs) + 2 * 4 * len(pairs)
    for m, ref in pairs:
        by_id = {a["id"]: a for a in answers if a["model"] == m and a["turn"] == 1}
        ref_by_id = {a["id"]: a for a in answers if a["model"] == ref and a["turn"] == 1}
        has = {i: by_id[i]["answer"].startswith(STYLE_PREFIX.strip()) for i in by_id}
        ref_has = {i: ref_by_id[i]["answer"].startswith(STYLE_PREFIX.strip()) for i in by_id}
        wins = sum(has[i] and not ref_has[i] for i in has)
        assert mt["pairwise"][m]["wins"] == wins
        undecided = sum(has[i] == ref_has[i] for i in has)  # "A" both ways: a tie, a first-position pick twice
        assert mt["pairwise"][m]["first_position_rate"] == pytest.approx((len(has) + undecided) / (2 * len(has)))
    judges = {j["figure"]: j for j in report["judges"]}
    assert set(judges) == {"win rate vs reference (held-out prompts)", "MT-Bench grades (1-10)",
                           "MT-Bench pairwise vs reference"}
    assert all(j["judge"] == f"judge-x @ {fe.base}" and j["self_judged"] == [] for j in judges.values())
    assert judges["MT-Bench grades (1-10)"]["info"]["usage"]["calls"] == requests
    # the report shows it: the table, the per-category chart, the judges and their biases
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0
    page = (run / "report.html").read_text()
    assert 'alt="MT-Bench mean grade by category"' in page and "Judges: who produced each judge figure" in page
    assert f"judge-x @ {fe.base}" in page and "MT-Bench (mean grade 1-10)" in (run / "eval" / "table.md").read_text()
    # the API key reached the judge and was written nowhere
    assert set(fe.auth_headers) == {f"Bearer {KEY}"}
    assert [p for p in run.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()] == []


def test_a_local_judge_grading_its_own_answers_is_flagged(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    res = CliRunner().invoke(app, ["eval", str(run), "--force", *EVAL, "--set", "eval.mt_bench.pairwise=false",
                                   "--set", "eval.mt_bench.languages=[en]"])
    assert res.exit_code == 0, res.output
    report = json.loads((run / "eval" / "report.json").read_text())
    mt = report["mt_bench"]
    assert mt["judge"].endswith("sft/model") and mt["bias"]["self_judged"] == ["sft"]
    assert all(m["graded"] + m["unparseable"] == 16 for m in mt["models"].values())  # read or counted
    assert report["models"]["sft"]["win_rate_judge"]["self_judged"] == ["sft"]
    assert report["models"]["dpo"]["win_rate_judge"]["self_judged"] == ["sft"]  # the reference is the judge


def test_eval_with_a_judge_endpoint_that_is_down_stops_at_once_in_one_line(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "eval" / "report.json").read_bytes()
    with FakeEndpoint() as fe:
        fe.close()  # nothing listens there any more
        res = CliRunner().invoke(app, ["eval", str(run), "--force", "--set", f"eval.judge.base_url={fe.base}",
                                       "--set", "eval.judge.model=judge-x", "--set", "eval.judge.max_retries=1",
                                       "--set", "eval.judge.backoff=0.05"])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]  # after the stage contract's "stage eval ..." line
    assert res.exit_code == 2 and errors == lines[-1:] and "cannot connect" in errors[0], res.output
    assert "Traceback" not in res.output
    assert (run / "eval" / "report.json").read_bytes() == before and not (run / "eval" / "judge_cache.jsonl").exists()
