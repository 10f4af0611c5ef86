"""SFT data path: bad records counted by reason, overlong policy, packing, padding, coverage."""

import json

import numpy as np
import pytest

from llm_recipe.demo.sft_set import GENERATORS, generate_bundled_sft
from llm_recipe.tokenizer.chat_formats import FORMATS
from llm_recipe.train.loop import length_grouped_batches
from llm_recipe.train.sft_coverage import CATEGORIES, coverage_report, infer_category
from llm_recipe.train.sft_data import (
    IGNORE,
    Conversation,
    DataStats,
    Example,
    collate_rows,
    conversations_from_records,
    pack_examples,
    padding_report,
    read_sft_records,
    single_rows,
    tokenize_examples,
)


def _u(t):
    return {"role": "user", "content": t}


def _a(t):
    return {"role": "assistant", "content": t}


def test_bad_records_are_counted_by_reason_with_file_and_line(tmp_path):
    f = tmp_path / "sft.jsonl"
    lines = [
        json.dumps({"messages": [_u("Hi"), _a("Hello!")]}),  # ok
        "{broken json",  # invalid_json
        json.dumps({"messages": [_u("Hi")]}),  # no_assistant_turn
        json.dumps({"messages": [{"role": "narrator", "content": "x"}, _a("y")]}),  # unknown_role
        json.dumps({"messages": [_u("Hi"), _a("   ")]}),  # empty_response
        json.dumps({"messages": [_u(""), _a("Hello")]}),  # empty_prompt
        json.dumps({"messages": [_a("Hello"), _u("Hi")]}),  # bad_turn_order (assistant first)
        json.dumps({"messages": [_u("a"), {"role": "user", "content": 3}]}),  # bad_message
        json.dumps({"text": "no conversation here"}),  # ok: TRL's language-modeling record
        json.dumps({"question": "no known shape"}),  # missing_fields
        json.dumps({"instruction": "Sum 2+2", "input": "", "output": "4"}),  # ok (Alpaca shape)
        json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"},
                                      {"from": "human", "value": "bye?"}]}),  # ok, trailing turn trimmed
        json.dumps({"prompt": "2+3?", "completion": "5"}),  # ok
    ]
    f.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")  # + not_utf8
    stats = DataStats()
    convs = read_sft_records([f], stats)
    assert stats.records == 14 and len(convs) == 5
    assert stats.skipped == {"invalid_json": 1, "no_assistant_turn": 1, "unknown_role": 1, "empty_response": 1,
                             "empty_prompt": 1, "bad_turn_order": 1, "bad_message": 1, "missing_fields": 1,
                             "not_utf8": 1}
    assert stats.modified == {"trailing_turns_removed": 1}
    assert f"{f}:3: no_assistant_turn" in stats.examples and f"{f}:14: not_utf8" in stats.examples
    assert convs[1].text == "no conversation here" and convs[1].messages == []
    assert convs[2].messages == [_u("Sum 2+2"), _a("4")]  # empty input dropped
    assert convs[3].messages == [_u("Hi"), _a("Yo")]
    assert (convs[4].prompt_text, convs[4].text) == ("2+3?", "2+3?5")  # TRL standard prompt-completion
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_sft_records([tmp_path / "missing.jsonl"], DataStats())


def test_overlong_policy_skip_or_truncate_never_silent(tokenizer):
    long_prompt = "word " * 80
    convs = [Conversation([_u("Short?"), _a("Yes.")]),
             Conversation([_u("Tell me."), _a("long answer " * 40)], where="f:2"),  # answer too long
             Conversation([_u(long_prompt), _a("ok")], where="f:3")]  # prompt alone > max_length
    fmt = FORMATS["chatml"]
    stats = DataStats()
    kept = tokenize_examples(convs, tokenizer, fmt, max_length=48, overlong="skip", stats=stats)
    assert len(kept) == 1 and stats.skipped == {"too_long": 2}
    stats = DataStats()
    kept = tokenize_examples(convs, tokenizer, fmt, max_length=48, overlong="truncate", stats=stats)
    assert len(kept) == 2 and stats.skipped == {"prompt_too_long": 1} and stats.modified == {"truncated": 1}
    assert len(kept[1]) == 48 and (kept[1].labels != IGNORE).any()
    assert "f:3: prompt_too_long" in stats.examples


def _examples(lengths, seed=0):
    r = np.random.default_rng(seed)
    out = []
    for n in lengths:
        ids = r.integers(5, 100, n).astype(np.int32)
        labels = np.where(np.arange(n) >= n // 2, ids, IGNORE).astype(np.int32)
        out.append(Example(ids, labels))
    return out


def test_best_fit_decreasing_packing_keeps_every_conversation_once():
    lengths = [100, 90, 60, 50, 40, 30, 20, 12, 10, 5, 3]
    exs = _examples(lengths)
    rows = pack_examples(exs, max_length=128)
    assert all(len(r) <= 128 for r in rows)
    assert sum(r.n_seqs for r in rows) == len(exs) and sum(len(r) for r in rows) == sum(lengths)
    # total 420 tokens -> 4 rows is the minimum possible (ceil(420/128)); BFD reaches it here.
    assert len(rows) == 4
    # Each conversation appears intact: positions restart at 0 and run 0..n-1 over its tokens.
    found = []
    for r in rows:
        starts = np.flatnonzero(r.position_ids == 0).tolist() + [len(r)]
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            assert (r.position_ids[a:b] == np.arange(b - a)).all()
            found.append(r.input_ids[a:b].tobytes())
    assert sorted(found) == sorted(e.input_ids.tobytes() for e in exs)
    with pytest.raises(ValueError, match="does not fit"):
        pack_examples(_examples([200]), max_length=128)


def test_collate_pads_as_its_own_segment_and_counts_tokens():
    exs = _examples([6, 3, 4])
    rows = pack_examples(exs[1:], 8) + single_rows(exs[:1])  # [3+4=7], [6]
    b = collate_rows(rows, pad_id=0)
    assert b["input_ids"].shape == (2, 7)
    assert b["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2], [0, 1, 2, 3, 4, 5, 0]]
    assert b["input_ids"][1, 6] == 0 and b["labels"][1, 6] == IGNORE
    # A conversation's first token never carries a label (it would be predicted across a boundary).
    assert (b["labels"][b["position_ids"] == 0] == IGNORE).all()
    assert b["n_tokens"] == 13 and b["pad_tokens"] == 1
    assert b["loss_tokens"] == int((b["labels"][:, 1:] != IGNORE).sum()) == 2 + 2 + 3


def test_length_grouping_and_padding_report():
    lengths = np.array([10, 200, 12, 190, 11, 205, 9, 198] * 8)
    order = np.random.default_rng(0).permutation(len(lengths))
    batches = length_grouped_batches(order, lengths, 4, seed=[1])
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))  # each item once
    assert all(lengths[b].max() - lengths[b].min() < 20 for b in batches)  # similar lengths together
    assert [b.tolist() for b in length_grouped_batches(order, lengths, 4, seed=[1])] == [b.tolist() for b in batches]
    exs = _examples(lengths.tolist())
    rep = padding_report(exs, pack_examples(exs, 256), batch_size=4, max_length=256)
    assert rep["tokens"] == int(lengths.sum())
    assert rep["length_grouped"] < 0.05 < rep["random_batches"] < rep["pad_to_max_length"]
    assert rep["packed"] < rep["random_batches"] and rep["conversations_per_row"] > 1.5


def test_bundled_set_covers_eight_categories_in_both_languages(tokenizer):
    recs = generate_bundled_sft(160, seed=1)
    assert recs == generate_bundled_sft(160, seed=1)  # deterministic
    assert recs != generate_bundled_sft(160, seed=2)
    assert set(GENERATORS) == set(CATEGORIES)
    stats = DataStats()
    convs = conversations_from_records(((f"b:{i}", r) for i, r in enumerate(recs)), stats)
    assert len(convs) == 160 and not stats.skipped
    assert any(len(c.messages) >= 4 for c in convs)  # multi-turn
    assert any(c.messages[0]["role"] == "system" for c in convs)
    assert any("input" in c.messages[-2] for c in convs)  # Alpaca input field
    exs = tokenize_examples(convs, tokenizer, FORMATS["alpaca_ja"], max_length=512)
    rep = coverage_report(exs, skew_ratio=3.0)
    assert all(rep["categories"][c]["examples"] == 20 for c in CATEGORIES)
    assert rep["flags"] == [] and set(rep["languages"]) == {"ja", "en"}
    assert abs(sum(c["token_share"] for c in rep["categories"].values()) - 1) < 1e-3


def test_coverage_flags_skew_and_missing_categories():
    def ex(cat, n=10):
        e = Example(np.zeros(n, np.int32), np.zeros(n, np.int32), cat, "en")
        return e
    exs = [ex("qa") for _ in range(40)] + [ex(c) for c in CATEGORIES[1:6] for _ in range(5)] + [ex("format")]
    rep = coverage_report(exs, skew_ratio=3.0)
    flags = "\n".join(rep["flags"])
    assert "qa: examples 8.0x the median" in flags and "safety: missing" in flags
    assert "format: examples 5.0x below the median" in flags
    assert "summarization" not in flags


def test_category_heuristic_for_unlabelled_records():
    cases = {
        "qa": [_u("What is the capital of France?"), _a("Paris.")],
        "translation": [_u("次の文を英語に訳してください。\n猫です。"), _a("It is a cat.")],
        "summarization": [_u("Summarize this text."), _a("Short.")],
        "code": [_u("Write a Python function that adds."), _a("```python\ndef add(a, b): ...```")],
        "format": [_u("ヨーロッパの国を三つ挙げてください。"), _a("1. フランス")],
        "creative": [_u("Write a short story about a cat."), _a("Once...")],
        "reasoning": [_u("Which is larger, 3 or 5?"), _a("5.")],
        "safety": [_u("How do I make a bomb?"), _a("I'm sorry, but I can't help with that.")],
    }
    for cat, msgs in cases.items():
        assert infer_category(msgs) == cat
    stats = DataStats()
    convs = conversations_from_records([("x:1", {"messages": cases["code"]}),
                                        ("x:2", {"messages": cases["qa"], "category": "safety"})], stats)
    assert (convs[0].category, convs[0].category_inferred) == ("code", True)
    assert (convs[1].category, convs[1].category_inferred) == ("safety", False)
