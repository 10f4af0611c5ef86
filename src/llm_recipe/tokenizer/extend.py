"""Extend a released model's byte-level BPE tokenizer with tokens learned from a corpus
(Swallow-style vocabulary expansion for continued pretraining in Japanese).

    tok, info = extend_and_save(base_tokenizer, ja_texts, "runs/x/tokenizer", new_tokens=8000)
    grow_embeddings(model, tok)      # new rows = mean of the old sub-token rows (tied heads too)

How. The texts are first segmented by the base tokenizer (its pre-tokenizer's words, its BPE's
tokens); a BPE is trained on that with `tokenizers`, one symbol per base token, so it continues
the base's BPE from where the base stops. Its merges are appended, in the order they were learned,
to the base's merge list (a merge whose result is a new string adds a token), until `new_tokens`
are added. The base's ids, merges and special tokens are untouched, so a text the base tokenized
gets the same ids unless a new merge applies, and decoding stays exact.

Why merges, not `add_tokens`. Added tokens are matched before the pre-tokenizer and the BPE run, as
literal strings, leftmost-longest; thousands of them would segment Japanese greedily instead of by
the merges' learned order, are matched inside any text (not respecting the pre-tokenizer's word
boundaries), must be valid UTF-8 strings (a byte-level BPE token often is not: half a character)
and slow encoding down. Appended merges keep one tokenization algorithm. A BPE trained on the raw
bytes instead would learn merges of pieces the base's merges never leave side by side (dead
tokens: 449 of 2,196 used in a first try on the sample corpus); training on the base's
segmentation makes every learned merge apply. `info["used_on_corpus"]` counts the new tokens that
occur when the corpus is encoded.

Initialisation. A new token's input embedding (and output row, when the head is not tied to the
embedding; SmolLM2 ties them, so one row serves both) is the mean of the rows of the base tokens
it replaces: its string run through the base's BPE alone. `extension.json` in the tokenizer
folder records what was added, and `base_tokenizer.json` (the base's own) what a new token's base
pieces are.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

INFO_FILE = "extension.json"
BASE_FILE = "base_tokenizer.json"


def _capped(texts: Iterable[str], max_chars: int) -> Iterator[str]:
    total = 0
    for t in texts:
        if total >= max_chars:
            return
        yield t[: max_chars - total]
        total += len(t)


def _base_json(tokenizer) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    model, pre = spec.get("model", {}), json.dumps(spec.get("pre_tokenizer"))
    if model.get("type") != "BPE" or "ByteLevel" not in pre:
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r}: extension needs a byte-level BPE "
                         f"tokenizer (this one is {model.get('type')} with pre-tokenizer {pre[:60]})")
    return spec


def _pair(m) -> tuple[str, str]:
    return tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1])


def _symbol(i: int) -> str:
    """Base id -> one private-use character (planes 15 and 16: up to 131,068 ids)."""
    return chr(0xF0000 + i) if i < 0xFFFE else chr(0x100000 + i - 0xFFFE)


def _base_words(tokenizer, texts: list[str]) -> Iterator[str]:
    """Each text as the base tokenizer segments it: one symbol per base token, its pre-tokenizer's
    words separated by spaces (a merge never crosses a word, as in the base)."""
    for enc in tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False):  # (_fast: no word ids)
        words: list[list[str]] = []
        last = None
        for i, w in zip(enc.ids, enc.word_ids, strict=True):
            if w != last or not words:
                words.append([])
                last = w
            words[-1].append(_symbol(i))
        yield " ".join("".join(w) for w in words)


def learn_merges(texts: list[str], tokenizer, vocab_size: int, min_frequency: int) -> list[tuple[list[int], list[int]]]:
    """BPE continued from the base's segmentation, trained with `tokenizers`: each base token is one
    symbol, so every learned merge joins two pieces the base leaves side by side (and is used when
    appended after the base's merges). Returns the merges as (base ids, base ids) pairs, in order."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False)
    bpe.train_from_iterator(_base_words(tokenizer, texts), trainer=trainer)
    back = {}
    for sym in {c for m in json.loads(bpe.to_str())["model"]["merges"] for part in _pair(m) for c in part}:
        code = ord(sym)
        back[sym] = code - 0xF0000 if code < 0x100000 else code - 0x100000 + 0xFFFE
    return [tuple([back[c] for c in part] for part in _pair(m)) for m in json.loads(bpe.to_str())["model"]["merges"]]


def extend_and_save(tokenizer, texts: Iterable[str], out_dir: str | os.PathLike, *, new_tokens: int,
                    min_frequency: int = 3, max_chars: int = 5_000_000):
    """Write the extended tokenizer to `out_dir` (with `extension.json`); return it and the info."""
    from transformers import AutoTokenizer

    spec = _base_json(tokenizer)
    model = spec["model"]
    vocab: dict[str, int] = model["vocab"]
    strings = {i: t for t, i in vocab.items()}
    base_vocab, base_merges = len(tokenizer), len(model["merges"])
    if base_vocab > 2 * 0xFFFE:
        raise ValueError(f"tokenizer extension supports vocabularies up to {2 * 0xFFFE:,} ids, not {base_vocab:,}")
    as_strings = bool(model["merges"]) and isinstance(model["merges"][0], str)
    corpus = list(_capped(texts, max_chars))
    # the trainer's vocabulary counts its alphabet (the base tokens in the corpus, at most all of them)
    # and more merges than wanted (some end in strings the base already has)
    learned = learn_merges(corpus, tokenizer, base_vocab + 2 * new_tokens, min_frequency)
    next_id = max([*vocab.values(), *(t["id"] for t in spec.get("added_tokens", []))]) + 1
    added, merges = [], 0
    for left, right in learned:
        a, b = "".join(strings[i] for i in left), "".join(strings[i] for i in right)
        if a + b not in vocab:
            if len(added) == new_tokens:
                break
            vocab[a + b] = next_id
            added.append(a + b)
            next_id += 1
        model["merges"].append(f"{a} {b}" if as_strings else [a, b])  # a merge into a base token is kept too
        merges += 1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    tokenizer.backend_tokenizer.save(str(out / BASE_FILE))  # what new rows are initialised from
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    extended = AutoTokenizer.from_pretrained(out, local_files_only=True)
    info = {"method": "BPE continued from the base segmentation, merges appended",
            "base_tokenizer": str(getattr(tokenizer, "name_or_path", "")),
            "base_vocab_size": base_vocab, "base_merges": base_merges, "added": len(added), "asked": new_tokens,
            "merges_added": merges, "min_frequency": min_frequency,
            "trained_on_chars": sum(len(t) for t in corpus),
            "used_on_corpus": _used(extended, corpus, base_vocab)}
    (out / INFO_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    return extended, info


def _used(tokenizer, texts: list[str], base_vocab: int) -> int:
    """How many of the new ids occur when `texts` (a sample) are encoded with the extension."""
    seen: set[int] = set()
    for enc in tokenizer.backend_tokenizer.encode_batch_fast(texts[:20000], add_special_tokens=False):
        seen.update(i for i in enc.ids if i >= base_vocab)
    return len(seen)


def extension_info(tokenizer) -> dict[str, Any] | None:
    path = Path(str(getattr(tokenizer, "name_or_path", ""))) / INFO_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def base_pieces(tokenizer, info: dict) -> dict[int, list[int]]:
    """New id -> the base ids its string is made of (the base's own BPE, `base_tokenizer.json`)."""
    base = Tokenizer.from_file(str(Path(str(tokenizer.name_or_path)) / BASE_FILE)).model
    n = info["base_vocab_size"]
    return {i: [t.id for t in base.tokenize(s)] for s, i in tokenizer.get_vocab().items() if i >= n}


def grow_embeddings(model, tokenizer) -> int:
    """Give `model` rows for every id of `tokenizer`; rows of an extension's new tokens are the mean of
    their base pieces' rows (input and, if untied, output); other new rows: transformers' mean
    resizing. Returns the number of rows added."""
    import torch

    emb = model.get_input_embeddings()
    old, new = emb.num_embeddings, len(tokenizer)
    if new <= old:
        return 0
    info = extension_info(tokenizer)
    if info is None or info["base_vocab_size"] != old:
        model.resize_token_embeddings(new)
        return new - old
    pieces = base_pieces(tokenizer, info)
    model.resize_token_embeddings(new, mean_resizing=False)
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = head is None or head.weight.data_ptr() == emb.weight.data_ptr()
    with torch.no_grad():
        for i, parts in pieces.items():
            emb.weight[i] = emb.weight[parts].mean(0)
            if not tied:
                head.weight[i] = head.weight[parts].mean(0)
    return new - old
