"""Byte-level BPE tokenizer training with `tokenizers`, saved as a Hugging Face directory.

Byte-level means every UTF-8 byte sequence is representable, so Japanese never hits an
unknown token and decode(encode(text)) == text byte for byte. No normalizer is attached on
purpose: normalization (NFKC etc.) belongs to corpus curation, and a tokenizer that silently
rewrites text cannot round-trip.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
# ChatML markers must be single tokens so SFT templates and loss masks line up with them.
CHAT_MARKERS = ["<|im_start|>", "<|im_end|>"]
SPECIAL_TOKENS = [PAD, BOS, EOS, *CHAT_MARKERS]


def _capped(texts: Iterable[str], max_chars: int) -> Iterator[str]:
    total = 0
    for t in texts:
        if total >= max_chars:
            return
        t = t[: max_chars - total]
        total += len(t)
        yield t


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4096,
    min_frequency: int = 2,
    max_chars: int = 3_000_000,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer that prepends BOS (Llama convention)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_capped(texts, max_chars), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    # BOS on every encoded text; trim_offsets=False keeps offsets exact for SFT loss masks.
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
        ),
    ])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=CHAT_MARKERS,
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 20,
    )


def train_and_save(
    texts: Iterable[str], out_dir: str | os.PathLike, **kwargs
) -> PreTrainedTokenizerFast:
    tokenizer = train_bpe_tokenizer(texts, **kwargs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    return tokenizer
