"""A judge that grades documents 0-5 with a rubric (FineWeb-Edu's annotation step).

One interface, `Grader.grade(prompts) -> np.ndarray` (a score in [0, 5] per prompt, NaN where the
judge gave none), two judges behind it:

  CausalLMGrader  any local causal LM: the prompt rendered in its chat format as a user turn, then
                  the next-token distribution over the digits 0-5 (`models.choice_logits`); the
                  score is its expectation (sum p(d) * d over the six digits, renormalised), so it
                  is deterministic and finer than a sampled digit. `distribution` keeps p(d).
  ChatGrader      any chat endpoint as a function messages -> reply text (e.g. an OpenAI-compatible
                  server's client): the first digit 0-5 of the reply; NaN when there is none.

Rubrics (`rubric(lang)`): `resources/quality/rubric-{en,ja}.txt`, a 0-5 scale of usefulness as
pretraining text (well-written informative prose high; spam, ads, menus, fragments low), with the
document in `{text}`. `grading_prompt(text, lang, max_chars)` cuts the document to `max_chars`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

RUBRIC_DIR = Path(__file__).resolve().parents[2] / "resources" / "quality"
DIGITS = tuple(str(d) for d in range(6))


class Grader(Protocol):
    name: str

    def grade(self, prompts: Sequence[str]) -> np.ndarray:
        """A score in [0, 5] per prompt; NaN where the judge gave none."""


def rubric(lang: str) -> str:
    return (RUBRIC_DIR / f"rubric-{'ja' if lang == 'ja' else 'en'}.txt").read_text(encoding="utf-8")


def grading_prompt(text: str, lang: str, max_chars: int = 2000) -> str:
    body = text if len(text) <= max_chars else text[:max_chars] + " ..."
    return rubric(lang).replace("{text}", body.strip())


class CausalLMGrader:
    name = "local"

    def __init__(self, model, tokenizer, chat_format: str | None = None, batch_size: int = 8):
        from ...models.reward_io import reward_format

        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.fmt = reward_format(tokenizer, chat_format)
        ids = [tokenizer(d, add_special_tokens=False)["input_ids"] for d in DIGITS]
        if any(len(i) != 1 for i in ids) or len({i[0] for i in ids}) != 6:
            raise ValueError("the judge's tokenizer must encode each digit 0-5 as its own single token")
        self.digit_ids = [i[0] for i in ids]
        self.distribution: np.ndarray | None = None  # p(0..5) of the last `grade` call

    def prompt_ids(self, prompt: str) -> list[int]:
        from ...tokenizer.chat_formats import render

        rendered = render(self.fmt, [{"role": "user", "content": prompt}], self.tokenizer, add_generation_prompt=True)
        return self.tokenizer(rendered.text, add_special_tokens=False)["input_ids"]

    def grade(self, prompts: Sequence[str]) -> np.ndarray:
        from ...models.choice_logits import choice_logits

        logits = choice_logits(self.model, [self.prompt_ids(p) for p in prompts], self.digit_ids,
                               self.tokenizer.pad_token_id, self.batch_size)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        self.distribution = p
        return p @ np.arange(6, dtype=np.float64)


_DIGIT = re.compile(r"(?<![\d.])([0-5])(?![\d.])")


class ChatGrader:
    """A chat endpoint as the judge: `complete(messages) -> reply text`, or `complete_many(list of
    messages) -> reply texts` for a backend that answers a batch at once."""

    name = "chat"

    def __init__(self, complete: Callable[[list[dict]], str] | None = None, name: str = "chat",
                 complete_many: Callable[[list[list[dict]]], list[str]] | None = None):
        if (complete is None) == (complete_many is None):
            raise ValueError("ChatGrader: give complete or complete_many")
        self.complete, self.name, self.complete_many = complete, name, complete_many

    def grade(self, prompts: Sequence[str]) -> np.ndarray:
        """Scores 0-5 (NaN where the reply holds no digit); a batch goes to `complete_many` when given
        (an endpoint answers its requests concurrently)."""
        conversations = [[{"role": "user", "content": p}] for p in prompts]
        replies = self.complete_many(conversations) if self.complete_many else [self.complete(c) for c in conversations]
        out = np.full(len(prompts), np.nan)
        for i, reply in enumerate(replies):
            if m := _DIGIT.search(reply or ""):
                out[i] = float(m.group(1))
        return out
