"""Every TRL 1.16 dataset format, read by us and by TRL itself: the same tokens and loss masks
(SFT) and the same prompt / chosen / rejected (preferences)."""

import json

import pytest
import torch
from transformers import AutoTokenizer

from llm_recipe.models.presets import build_preset_model
from llm_recipe.preference.converters import read_preference_files
from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format
from llm_recipe.train.sft_data import DataStats, read_sft_records, tokenize_examples

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

SFT_FORMATS = {
    "messages": [{"messages": [{"role": "user", "content": "What is the capital of France?"},
                               {"role": "assistant", "content": "Paris."}]}],
    "messages with tool turns": [{"messages": [
        {"role": "user", "content": "東京の天気は？"}, {"role": "assistant", "content": "Checking the weather."},
        {"role": "tool", "content": "晴れ、25度"}, {"role": "assistant", "content": "東京は晴れで25度です。"}]}],
    "prompt-completion (standard)": [{"prompt": "The capital of Japan is", "completion": " Tokyo."},
                                     {"prompt": "2+2=", "completion": "4"}],
    "prompt-completion (conversational)": [{"prompt": [{"role": "user", "content": "猫は何を食べますか？"}],
                                            "completion": [{"role": "assistant", "content": "魚や肉です。"}]}],
    "text (language modeling)": [{"text": "東京は日本の首都です。 Tokyo is the capital of Japan."}],
}


@pytest.fixture(scope="module")
def chat_tokenizer(tokenizer):
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    apply_chat_format(tok, FORMATS["chatml"])
    return tok


def _trl_rows(tok, records, tmp_path):
    torch.manual_seed(0)
    model = build_preset_model("micro", tok, seed=1)
    conversational = "messages" in records[0]
    args = trl.SFTConfig(output_dir=str(tmp_path), max_length=256, bf16=False, use_cpu=True, report_to=[],
                         assistant_only_loss=conversational)
    return trl.SFTTrainer(model=model, args=args, processing_class=tok,
                          train_dataset=datasets.Dataset.from_list(records)).train_dataset


@pytest.mark.parametrize("fmt", list(SFT_FORMATS))
def test_sft_formats_tokenize_and_mask_as_trl(fmt, chat_tokenizer, tmp_path):
    records = SFT_FORMATS[fmt]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    stats = DataStats()
    ours = tokenize_examples(read_sft_records([data], stats), chat_tokenizer, FORMATS["chatml"], max_length=256,
                             stats=stats)
    assert stats.skipped == {} and len(ours) == len(records)
    theirs = _trl_rows(chat_tokenizer, records, tmp_path / "trl")
    for row, ex in zip(theirs, ours, strict=True):
        assert ex.input_ids.tolist() == row["input_ids"]
        labels = row["labels"]
        if fmt == "prompt-completion (conversational)":
            # One known difference: TRL's completion is all the text after the rendered prompt, so
            # it also trains the template's newline after <|im_end|>; we train the assistant turn
            # up to and including its end-of-turn token, as with `messages` (where TRL agrees).
            end = row["input_ids"].index(chat_tokenizer.convert_tokens_to_ids("<|im_end|>"), len(row["input_ids"]) - 3)
            assert labels[end + 1 :] == row["input_ids"][end + 1 :] and ex.labels[end + 1 :].tolist() == [-100] * (
                len(labels) - end - 1)
            labels = labels[: end + 1] + [-100] * (len(labels) - end - 1)
        assert ex.labels.tolist() == labels
        assert (ex.labels != -100).sum() > 0


TOOL_RECORD = {"messages": [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {
        "name": "get_weather", "arguments": {"city": "Tokyo"}}}]},
    {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}],
    "tools": json.dumps([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])}


def test_tool_calls_are_rendered_and_trained_by_chatml(chat_tokenizer, tmp_path):
    """The project's ChatML renders calls as Hermes / Qwen2.5 do (`<tool_call>` JSON inside the
    trained assistant turn) and the schemas (here a JSON string column) in the system turn."""
    data = tmp_path / "tools.jsonl"
    data.write_text(json.dumps(TOOL_RECORD) + "\n", encoding="utf-8")
    stats = DataStats()
    convs = read_sft_records([data], stats)
    assert len(convs) == 1 and convs[0].uses_tools
    (ex,) = tokenize_examples(convs, chat_tokenizer, FORMATS["chatml"], max_length=512, stats=stats)
    trained = chat_tokenizer.decode(ex.input_ids[ex.labels != -100])
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call><|im_end|>' in trained
    assert "Sunny.<|im_end|>" in trained and "sunny" not in trained  # the tool's result is context
    prompt = chat_tokenizer.decode(ex.input_ids[ex.labels == -100])
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in prompt


@pytest.mark.parametrize("fmt,reason", [("alpaca_en", "template_drops_tool_calls"),
                                        ("model template without tool calls", "template_drops_tool_calls")])
def test_a_template_that_drops_tool_calls_refuses_the_record(fmt, reason, chat_tokenizer, tmp_path):
    """A template that ignores `tool_calls` would train an empty assistant turn: the record is
    counted under the part it drops instead (probed: `chat_formats.tool_support`)."""
    from llm_recipe.tokenizer.chat_formats import _CHATML_V1, ChatFormat, tool_support

    chat_format = FORMATS[fmt] if fmt in FORMATS else ChatFormat("tokenizer", _CHATML_V1)
    assert not tool_support(chat_format, chat_tokenizer)["tool_calls"]
    assert tool_support(FORMATS["chatml"], chat_tokenizer) == {"tool_calls": True, "tool_turns": True, "tools": True}
    data = tmp_path / "tools.jsonl"
    plain = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data.write_text(json.dumps(TOOL_RECORD) + "\n" + json.dumps(plain) + "\n", encoding="utf-8")
    stats = DataStats()
    kept = tokenize_examples(read_sft_records([data], stats), chat_tokenizer, chat_format, max_length=512,
                             stats=stats)
    assert len(kept) == 1 and stats.skipped == {reason: 1} and stats.examples == [f"{data}:1: {reason}"]


PREF_FORMATS = {
    "standard, explicit prompt": [{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}],
    "conversational, explicit prompt": [{"prompt": [{"role": "user", "content": "空の色は？"}],
                                         "chosen": [{"role": "assistant", "content": "青です。"}],
                                         "rejected": [{"role": "assistant", "content": "緑です。"}]}],
    "standard, implicit prompt": [{"chosen": "The sky is blue.", "rejected": "The sky is green."}],
    "conversational, implicit prompt": [{
        "chosen": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "user", "content": "What color is the sky?"},
                     {"role": "assistant", "content": "Green."}]}],
    "text prompt beside whole conversations (UltraFeedback binarized)": [{
        "prompt": "What color is the sky?",
        "chosen": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "user", "content": "What color is the sky?"},
                     {"role": "assistant", "content": "Green."}]}],
}


def _text(x):
    return x if isinstance(x, str) else x[-1]["content"] if x and x[-1]["role"] == "assistant" else x


@pytest.mark.parametrize("fmt", list(PREF_FORMATS))
def test_preference_formats_give_trls_prompt_chosen_rejected(fmt, tmp_path):
    from trl.data_utils import maybe_extract_prompt

    records = PREF_FORMATS[fmt]
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    pairs, log = read_preference_files([data])
    assert log.total_skipped == 0 and len(pairs) == len(records)
    for pair, rec in zip(pairs, records, strict=True):
        theirs = maybe_extract_prompt(dict(rec))
        assert pair.prompt == theirs["prompt"]
        assert (pair.chosen, pair.rejected) == (_text(theirs["chosen"]), _text(theirs["rejected"]))


def test_unpaired_records_pair_back_into_what_trl_unpaired(tmp_path):
    """TRL's `unpair_preference_dataset` turns pairs into KTO records; reading those gives the pairs
    back, and a completion without a partner of the other label is counted."""
    from trl.data_utils import unpair_preference_dataset

    pairs = [{"prompt": f"Question {i}?", "chosen": f"Good answer {i}.", "rejected": f"Bad answer {i}."}
             for i in range(4)]
    unpaired = list(unpair_preference_dataset(datasets.Dataset.from_list(pairs)))
    assert {type(u["label"]) for u in unpaired} == {bool}
    unpaired.append({"prompt": "Lonely?", "completion": "Yes.", "label": True})
    data = tmp_path / "kto.jsonl"
    data.write_text("".join(json.dumps(u) + "\n" for u in unpaired), encoding="utf-8")
    got, log = read_preference_files([data])
    assert sorted((p.prompt, p.chosen, p.rejected) for p in got) == sorted(
        (p["prompt"], p["chosen"], p["rejected"]) for p in pairs)
    assert log.skipped == {"unpaired_no_partner": 1}


def test_ultrafeedback_completions_become_scored_pairs(tmp_path):
    rec = {"instruction": "Name a fruit.", "completions": [
        {"response": "Apple.", "overall_score": 8.0}, {"response": "A rock.", "overall_score": 2.0},
        {"response": "Banana.", "overall_score": 8.0}]}
    data = tmp_path / "uf.jsonl"
    data.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    pairs, log = read_preference_files([data])
    assert sorted((p.chosen, p.rejected) for p in pairs) == [("Apple.", "A rock."), ("Banana.", "A rock.")]
    assert log.skipped == {"tie": 1}


def test_models_saved_with_the_earlier_chatml_still_read_as_chatml(chat_tokenizer):
    """The ChatML template before tool calls were rendered is still `chatml`, and renders every
    conversation without tools exactly as the current one."""
    from llm_recipe.tokenizer.chat_formats import _CHATML_V1, ChatFormat, format_name_of, render

    assert format_name_of(_CHATML_V1) == "chatml" and FORMATS["chatml"].template != _CHATML_V1
    for records in (SFT_FORMATS["messages"], SFT_FORMATS["messages with tool turns"]):
        msgs = records[0]["messages"]
        assert render(ChatFormat("chatml", _CHATML_V1), msgs, chat_tokenizer) == render(FORMATS["chatml"], msgs,
                                                                                         chat_tokenizer)
