import json

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.preference.converters import (
    graded_to_pair,
    parse_hh_transcript,
    ranking_to_pairs,
    read_preference_files,
    scores_to_pairs,
)
from llm_recipe.preference.records import InvalidRecord, PreferencePair, split_by_prompt


def _write(path, lines):
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else json.dumps(ln, ensure_ascii=False).encode()) + b"\n"
                              for ln in lines))
    return path


def test_ranking_gives_all_ordered_pairs_best_first():
    responses = ["A-text", "B-text", "C-text", "D-text"]
    pairs = ranking_to_pairs("q", responses, ["A", "C", "B", "D"])  # A > C > B > D
    assert len(pairs) == 6 == 4 * 3 // 2
    got = [(p.chosen[0], p.rejected[0]) for p in pairs]
    assert got == [("A", "C"), ("A", "B"), ("A", "D"), ("C", "B"), ("C", "D"), ("B", "D")]
    # Indices work the same as letters, and five responses give 10 pairs.
    assert [(p.chosen, p.rejected) for p in ranking_to_pairs("q", responses, [0, 2, 1, 3])] == \
        [(p.chosen, p.rejected) for p in pairs]
    assert len(ranking_to_pairs("q", list("vwxyz"), [4, 3, 2, 1, 0])) == 10
    with pytest.raises(InvalidRecord, match="ranking_length_mismatch"):
        ranking_to_pairs("q", responses, ["A", "B", "C"])
    with pytest.raises(InvalidRecord, match="ranking_invalid"):
        ranking_to_pairs("q", responses, ["A", "A", "B", "C"])


def test_pointwise_scores_drop_and_count_ties():
    pairs, ties = scores_to_pairs("q", ["r0", "r1", "r2", "r3"], [3, 1, 3, 2])
    assert ties == 1  # r0 vs r2
    assert {(p.chosen, p.rejected) for p in pairs} == {("r0", "r1"), ("r0", "r3"), ("r2", "r1"), ("r2", "r3"),
                                                      ("r3", "r1")}
    # A gap threshold turns near-ties into ties too.
    _, ties = scores_to_pairs("q", ["a", "b", "c"], [1.0, 1.05, 3.0], min_gap=0.1)
    assert ties == 1


def test_graded_comparisons_give_margins_by_strength():
    p = graded_to_pair("q", "first", "second", "b_better")
    assert (p.chosen, p.rejected) == ("second", "first") and p.margin == pytest.approx(2 / 3)
    assert graded_to_pair("q", "first", "second", 1).margin == 1.0  # 1 = A much better
    assert graded_to_pair("q", "first", "second", 4).chosen == "second"  # 4 = B slightly better
    assert graded_to_pair("q", "first", "second", "a_slightly_better").margin == pytest.approx(1 / 3)
    with pytest.raises(InvalidRecord, match="unknown_grade"):
        graded_to_pair("q", "first", "second", "a_way_better")


def test_hh_rlhf_transcripts_and_message_styles(tmp_path):
    hh_c = "\n\nHuman: Hi!\n\nAssistant: Hello.\n\nHuman: Capital of France?\n\nAssistant: Paris."
    hh_r = "\n\nHuman: Hi!\n\nAssistant: Hello.\n\nHuman: Capital of France?\n\nAssistant: Lyon."
    assert parse_hh_transcript(hh_c)[-1] == {"role": "assistant", "content": "Paris."}
    f = _write(tmp_path / "mixed.jsonl", [
        {"chosen": hh_c, "rejected": hh_r},
        {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}],
         "rejected": [{"role": "assistant", "content": "5"}]},
        {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]},
        {"prompt": "q", "chosen": "good", "rejected": "bad", "margin": 0.5},
        {"prompt": "q", "response_a": "x", "response_b": "y", "grade": "a_much_better"},
    ])
    pairs, log = read_preference_files([f])
    assert log.skipped == {} and log.kept == 5
    hh = pairs[0]
    assert hh.prompt == [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."},
                         {"role": "user", "content": "Capital of France?"}]
    assert (hh.chosen, hh.rejected) == ("Paris.", "Lyon.")
    assert (pairs[1].chosen, pairs[1].rejected) == ("4", "5")
    assert pairs[2].prompt == [{"role": "user", "content": "Hi"}] and pairs[2].chosen == "Hello!"
    assert pairs[3].margin == 0.5 and pairs[4].margin == 1.0
    assert pairs[0].meta["source"] == f"{f}:1"


def test_bad_input_is_counted_per_reason_with_file_and_line(tmp_path):
    f = _write(tmp_path / "bad.jsonl", [
        {"prompt": "q", "chosen": "ok", "rejected": "fine"},  # 1: good
        {"prompt": "q", "chosen": "same", "rejected": "same"},  # 2
        {"prompt": "   ", "chosen": "a", "rejected": "b"},  # 3
        {"prompt": "q", "chosen": "a"},  # 4: missing rejected
        {"prompt": "q", "responses": ["a", "b", "c"], "ranking": [0, 1]},  # 5
        b"{not json",  # 6
        b"\xff\xfe",  # 7
        {"prompt": "q", "chosen": "a", "rejected": ""},  # 8
        {"chosen": "\n\nHuman: x\n\nAssistant: a", "rejected": "\n\nHuman: y\n\nAssistant: b"},  # 9
        {"prompt": "q", "responses": ["a", "b", "a"], "ranking": [0, 1, 2]},  # 10: 2 good pairs, 1 equal
        {"text": "no preference here"},  # 11
    ])
    pairs, log = read_preference_files([f])
    assert log.skipped == {
        "chosen_equals_rejected": 2, "empty_prompt": 1, "missing_field": 2, "ranking_length_mismatch": 1,
        "invalid_json": 1, "not_utf8": 1, "empty_response": 1, "context_mismatch": 1,
    }
    assert log.kept == len(pairs) == 3
    assert log.where["chosen_equals_rejected"] == [f"{f}:2", f"{f}:10"]
    assert log.where["empty_prompt"] == [f"{f}:3"]
    assert log.where["missing_field"][0] == f"{f}:4: rejected"
    assert log.where["ranking_length_mismatch"] == [f"{f}:5: 2 ranks for 3 responses"]
    assert log.where["empty_response"] == [f"{f}:8: rejected"]


def test_convert_cli_writes_pairs_and_report_and_fails_in_one_line(tmp_path):
    src = _write(tmp_path / "rank.jsonl", [
        {"prompt": "q1", "responses": ["a", "b", "c", "d"], "ranking": ["A", "C", "B", "D"]},
        {"prompt": "", "responses": ["a", "b"], "ranking": [0, 1]},
    ])
    out = tmp_path / "pairs.jsonl"
    res = CliRunner().invoke(app, ["prefs", "convert", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "pairs: 6" in res.output and "skipped empty_prompt: 1" in res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["chosen"], r["rejected"]) for r in rows][:3] == [("a", "c"), ("a", "b"), ("a", "d")]
    report = json.loads((tmp_path / "pairs.report.json").read_text())
    assert report["skipped"] == {"empty_prompt": 1} and report["where"]["empty_prompt"] == [f"{src}:2"]
    res = CliRunner().invoke(app, ["prefs", "convert", str(tmp_path / "missing.jsonl"), "--out", str(out)])
    assert res.exit_code == 2 and "missing.jsonl" in res.output and "Traceback" not in res.output


def test_split_by_prompt_is_deterministic_and_keeps_prompts_on_one_side():
    pairs = [PreferencePair(f"prompt {i % 50}", f"c{i}", f"r{i}") for i in range(400)]
    train, held = split_by_prompt(pairs, 0.2, seed=1)
    assert len(train) + len(held) == 400 and 0.1 < len(held) / 400 < 0.3
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    assert split_by_prompt(pairs, 0.2, seed=1) == (train, held)
