"""Prompt formats: exact rendered strings, exact trained-token positions, saved-format round trip."""

import warnings

import numpy as np
import pytest
from tokenizers import Tokenizer, models
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from llm_recipe.tokenizer.chat_formats import (
    FORMATS,
    ChatFormat,
    ChatFormatMismatchWarning,
    TemplateError,
    apply_chat_format,
    render,
    resolve_chat_format,
    stop_token_ids,
)
from llm_recipe.train.sft_data import Conversation, span_mask, tokenize_examples

EN = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "Bye"},
      {"role": "assistant", "content": "Ok"}]
JA = [{"role": "user", "content": "首都は？", "input": "日本"}, {"role": "assistant", "content": "東京です。"}]

RENDERED = {
    # "alpaca" picks its headers from the language of the first user message.
    ("alpaca", "en"): "<s>Be kind.\n\n### Instruction:\nHi\n\n### Response:\nYo</s>\n\n"
                      "### Instruction:\nBye\n\n### Response:\nOk</s>",
    ("alpaca", "ja"): "<s>### 指示:\n首都は？\n\n### 入力:\n日本\n\n### 応答:\n東京です。</s>",
    ("alpaca_en", "en"): "<s>Be kind.\n\n### Instruction:\nHi\n\n### Response:\nYo</s>\n\n"
                         "### Instruction:\nBye\n\n### Response:\nOk</s>",
    ("alpaca_en", "ja"): "<s>### Instruction:\n首都は？\n\n### Input:\n日本\n\n### Response:\n東京です。</s>",
    ("alpaca_ja", "en"): "<s>Be kind.\n\n### 指示:\nHi\n\n### 応答:\nYo</s>\n\n### 指示:\nBye\n\n### 応答:\nOk</s>",
    ("alpaca_ja", "ja"): "<s>### 指示:\n首都は？\n\n### 入力:\n日本\n\n### 応答:\n東京です。</s>",
    ("chatml", "en"): "<s><|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                      "<|im_start|>assistant\nYo<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
                      "<|im_start|>assistant\nOk<|im_end|>\n",
    ("chatml", "ja"): "<s><|im_start|>user\n首都は？\n\n日本<|im_end|>\n<|im_start|>assistant\n東京です。<|im_end|>\n",
    ("llama2", "en"): "<s>[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST] Yo </s><s>[INST] Bye [/INST] Ok </s>",
    ("llama2", "ja"): "<s>[INST] 首都は？\n\n日本 [/INST] 東京です。 </s>",
}
# With a one-token-per-character tokenizer these are checkable by counting characters, e.g.
# alpaca_en/en: <s>=0, "Be kind."=1-8, "\n\n"=9-10, "### Instruction:"=11-26, "\n"=27, "Hi"=28-29,
# "\n\n"=30-31, "### Response:"=32-44, "\n"=45, "Yo"=46-47, "</s>"=48.
TRAINED_POSITIONS = {
    ("alpaca", "en"): [46, 47, 48, 87, 88, 89],
    ("alpaca", "ja"): [35, 36, 37, 38, 39, 40],
    ("alpaca_en", "en"): [46, 47, 48, 87, 88, 89],
    ("alpaca_en", "ja"): [53, 54, 55, 56, 57, 58],
    ("alpaca_ja", "en"): [31, 32, 33, 57, 58, 59],
    ("alpaca_ja", "ja"): [35, 36, 37, 38, 39, 40],
    ("chatml", "en"): [40, 41, 42, 66, 67, 68],
    ("chatml", "ja"): [28, 29, 30, 31, 32, 33],
    ("llama2", "en"): [45, 46, 47, 48, 49, 69, 70, 71, 72, 73],  # " Yo </s>" incl. the spaces
    ("llama2", "ja"): [24, 25, 26, 27, 28, 29, 30, 31],
}
GENERATION_PROMPT = {
    "alpaca": "<s>### Instruction:\nHi\n\n### Response:\n",
    "alpaca_en": "<s>### Instruction:\nHi\n\n### Response:\n",
    "alpaca_ja": "<s>### 指示:\nHi\n\n### 応答:\n",
    "chatml": "<s><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "llama2": "<s>[INST] Hi [/INST]",
}
SPECIAL = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<unk>"]


@pytest.fixture(scope="module")
def char_tok():
    """One token per character (plus special tokens): token index = countable position."""
    chars = sorted(set("".join(RENDERED.values())) - set("".join(SPECIAL)) | set("<>/|"))
    vocab = {t: i for i, t in enumerate(SPECIAL + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(SPECIAL)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=SPECIAL[3:5])


@pytest.mark.parametrize("name,lang", list(RENDERED))
def test_exact_render_and_trained_positions(char_tok, name, lang):
    conv = EN if lang == "en" else JA
    fmt = FORMATS[name]
    assert render(fmt, conv, char_tok).text == RENDERED[name, lang]
    ex = tokenize_examples([Conversation(conv)], char_tok, fmt, max_length=1000)[0]
    assert np.flatnonzero(ex.labels != -100).tolist() == TRAINED_POSITIONS[name, lang]
    assert (ex.labels[ex.labels != -100] == ex.input_ids[ex.labels != -100]).all()
    # train_on="last": only the final assistant turn keeps its labels.
    last = tokenize_examples([Conversation(conv)], char_tok, fmt, max_length=1000, train_on="last")[0]
    n_last = len(TRAINED_POSITIONS[name, lang]) // (2 if lang == "en" else 1)
    assert np.flatnonzero(last.labels != -100).tolist() == TRAINED_POSITIONS[name, lang][-n_last:]


@pytest.mark.parametrize("name", list(FORMATS))
def test_generation_prompt_and_hf_apply_chat_template_agree(tokenizer, name):
    fmt = FORMATS[name]
    assert render(fmt, [{"role": "user", "content": "Hi"}], tokenizer, add_generation_prompt=True).text == \
        GENERATION_PROMPT[name]
    # What we save (tokenizer.chat_template) renders exactly what we trained on, with HF's own call.
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    apply_chat_format(tok, fmt)
    for conv in (EN, JA):
        assert tok.apply_chat_template(conv, tokenize=False) == render(fmt, conv, tok).text


def test_mask_with_real_bpe_covers_exactly_the_answers(tokenizer):
    # Japanese + English, multi-turn, on the byte-level BPE: the trained tokens decode to the
    # assistant texts (with their end-of-turn token) and nothing else.
    conv = [{"role": "user", "content": "フランスの首都はどこですか？"}, {"role": "assistant", "content": "パリです。"},
            {"role": "user", "content": "What about Japan?"}, {"role": "assistant", "content": "The capital is Tokyo."}]
    for name, expect in [("chatml", "パリです。<|im_end|>The capital is Tokyo.<|im_end|>"),
                         ("alpaca_ja", "パリです。</s>The capital is Tokyo.</s>"),
                         ("llama2", " パリです。 </s> The capital is Tokyo. </s>")]:
        ex = tokenize_examples([Conversation(conv)], tokenizer, FORMATS[name], max_length=1000)[0]
        trained = ex.input_ids[ex.labels != -100]
        assert tokenizer.decode(trained) == expect, name
        # Tokenized once, as a whole: the ids are those of the full rendered string.
        assert ex.input_ids.tolist() == tokenizer(render(FORMATS[name], conv, tokenizer).text,
                                                  add_special_tokens=False)["input_ids"]


def test_span_mask_overlap_rule():
    offsets = np.array([[0, 0], [0, 3], [3, 5], [5, 9], [9, 12]])  # BOS (zero width), then text
    # Span [4, 10): token [3,5) straddles the start -> trained; [9,12) straddles the end -> trained.
    assert span_mask(offsets, [(4, 10)]).tolist() == [False, False, True, True, True]
    assert span_mask(offsets, [(5, 9)]).tolist() == [False, False, False, True, False]
    assert span_mask(offsets, []).tolist() == [False] * 5


def test_saved_format_round_trip_and_mismatch_warning(tmp_path, tokenizer):
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    assert apply_chat_format(tok, FORMATS["chatml"]) == []  # markers already in our vocabulary
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_chat_format(loaded).name == "chatml"  # from the saved template
        assert resolve_chat_format(loaded, "chatml").name == "chatml"  # same one: no warning
    with pytest.warns(ChatFormatMismatchWarning, match="trained with chat format 'chatml'"):
        assert resolve_chat_format(loaded, "alpaca_en").name == "alpaca_en"
    assert stop_token_ids(loaded, FORMATS["chatml"]) == sorted({loaded.eos_token_id,
                                                                 loaded.convert_tokens_to_ids("<|im_end|>")})
    with pytest.raises(ValueError, match="no saved chat format"):
        resolve_chat_format(AutoTokenizer.from_pretrained(tokenizer.name_or_path))


def test_tokenizer_own_template_without_generation_tags(tokenizer):
    plain = FORMATS["chatml"].template.replace("{%- generation -%}", "").replace("{%- endgeneration -%}", "")
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = plain
    fmt = resolve_chat_format(tok)
    assert fmt.name == "tokenizer" and not fmt.has_generation_tags
    r = render(fmt, EN, tok)
    # Spans from growing prefixes: each answer plus what the template writes after it.
    assert [r.text[a:b] for a, b in r.spans] == ["Yo<|im_end|>\n", "Ok<|im_end|>\n"]
    # A template whose start depends on the whole conversation cannot give prefix spans.
    unstable = ChatFormat("tokenizer", "{{ messages|length }}" + plain)
    with pytest.raises(TemplateError):
        render(unstable, EN, tok)


def test_unknown_format_name_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="unknown chat format 'vicuna'"):
        resolve_chat_format(tokenizer, "vicuna")
