"""Text generation entry points: plain continuation and chat (using the model's saved format).

Both go through `infer.sampling.sample` (batched, KV cache, temperature / top-k / top-p /
repetition penalty / stop strings, seeded per prompt).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import SamplingConfig
from ..tokenizer.chat_formats import ChatFormat, render, resolve_chat_format, stop_token_ids
from .sampling import Generation, sample


def generate_texts(model, tokenizer, prompts: list[str], sampling: SamplingConfig, seed: int = 0) -> list[str]:
    """Continue each prompt; returns only the generated continuation (special tokens removed)."""
    ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    gens = sample(model, tokenizer, ids, sampling, seed)
    return [g.text for g in gens]


def chat_prompt_ids(tokenizer, fmt: ChatFormat, prompts: Sequence[str | list[dict]],
                    system: str | None = None) -> list[list[int]]:
    """Render user prompts (or whole conversations ending in a user turn) as generation prompts.
    The rendered text already holds the format's special tokens (BOS included), so the tokenizer
    adds none: exactly the token layout SFT trained on."""
    texts = []
    for p in prompts:
        msgs = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
        if system and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": system})
        texts.append(render(fmt, msgs, tokenizer, add_generation_prompt=True).text)
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def chat_stop_ids(model, tokenizer, fmt: ChatFormat) -> list[int]:
    """Tokens that end an assistant turn: the format's end-of-turn marker(s) and the model's eos."""
    stops = set(stop_token_ids(tokenizer, fmt))
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    stops |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return sorted(stops)


def generate_chat(model, tokenizer, prompts: Sequence[str | list[dict]], sampling: SamplingConfig, seed: int = 0,
                  chat_format: str | None = None, system: str | None = None) -> list[Generation]:
    """Answer each prompt as the assistant. `chat_format=None` uses the format saved with the model
    (its tokenizer's chat_template); naming another one warns. Generation stops at eos or the
    format's end-of-turn token (finish_reason 'stop_token')."""
    fmt = resolve_chat_format(tokenizer, chat_format)
    ids = chat_prompt_ids(tokenizer, fmt, prompts, system)
    return sample(model, tokenizer, ids, sampling, seed, stop_token_ids=chat_stop_ids(model, tokenizer, fmt))
