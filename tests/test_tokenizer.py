from transformers import AutoTokenizer

from llm_recipe.tokenizer.train import BOS, CHAT_MARKERS, EOS, PAD

SAMPLES = [
    "東京は日本の首都です。大阪はたこ焼きで知られています。",
    "The capital of France is Paris.\n\nIt has  two spaces\tand a tab.",
    "半角ｶﾀｶﾅと全角ＡＢＣ、①②、㈱、絵文字😀も、そのまま往復する。",
    "def add(a, b):\n    return a + b  # 和を返す\n",
    "mixed 日本語 and English 123,456.78 ¥1,000 〒100-0001",
]


def test_roundtrip_is_byte_exact(tokenizer):
    for text in SAMPLES:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id
        assert tokenizer.decode(ids, skip_special_tokens=True).encode("utf-8") == text.encode("utf-8")


def test_unseen_characters_do_not_become_unknown(tokenizer):
    # Byte-level: characters never seen in training still encode (as byte tokens) and decode back.
    text = "龘靐齉 ☃ 𠮷野家"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_special_tokens_are_single_ids_and_saved(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (BOS, EOS, PAD)
    for marker in CHAT_MARKERS:
        ids = tok(marker, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, marker
    text = "<|im_start|>user\nこんにちは<|im_end|>"
    assert tok.decode(tok(text)["input_ids"][1:]) == text


def test_japanese_is_compressed_by_learned_merges(tokenizer):
    # A trained BPE must beat raw bytes on in-domain Japanese (3 bytes per kana/kanji).
    text = "日本の首都は東京です。"
    n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n_tokens < len(text.encode("utf-8")) / 3
