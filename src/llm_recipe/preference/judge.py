"""LLM-as-judge labeler: any local causal LM compares two responses, in both orders.

The judge sees the request and responses A and B in its chat format and we read its next-token
logits for the two choice tokens ("A" vs "B"): margin = logit(A) - logit(B). No sampling, so the
verdict is deterministic. Judges prefer a position (often the first); asking twice with the
responses swapped cancels that: a response wins only if it wins in both orders, otherwise the
comparison is a tie (dropped and counted). `debiased` = (m_ab - m_ba) / 2 removes a constant
position bias from the margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..models.choice_logits import choice_logits
from ..models.reward_io import reward_format
from ..tokenizer.chat_formats import render
from .records import prompt_key


@dataclass
class Verdict:
    winner: int  # +1: first response better, -1: second better, 0: tie (orders disagree)
    margin_ab: float  # logit(A) - logit(B) with the first response shown as A
    margin_ba: float  # the same with the responses swapped

    @property
    def debiased(self) -> float:
        return (self.margin_ab - self.margin_ba) / 2


class CausalLMJudge:
    def __init__(self, model, tokenizer, template: str, choices: tuple[str, str] = ("A", "B"),
                 chat_format: str | None = None, batch_size: int = 16):
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.fmt = reward_format(tokenizer, chat_format)
        ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        if not all(ids) or ids[0][0] == ids[1][0]:
            raise ValueError(f"judge choices {choices} must start with different tokens")
        self.choice_ids = (ids[0][0], ids[1][0])
        self.batch_size = batch_size

    def judge_prompt_ids(self, prompt, a: str, b: str) -> list[int]:
        text = self.template.format(prompt=prompt_key(prompt), a=a, b=b)
        rendered = render(self.fmt, [{"role": "user", "content": text}], self.tokenizer, add_generation_prompt=True)
        return self.tokenizer(rendered.text, add_special_tokens=False)["input_ids"]

    def margins(self, items: Sequence[tuple]) -> np.ndarray:
        """logit(A) - logit(B) for each (prompt, a, b)."""
        seqs = [self.judge_prompt_ids(*it) for it in items]
        logits = choice_logits(self.model, seqs, self.choice_ids, self.tokenizer.pad_token_id, self.batch_size)
        return logits[:, 0] - logits[:, 1]

    def compare(self, items: Sequence[tuple]) -> list[Verdict]:
        """Verdicts for (prompt, first, second) triples, each judged in both orders."""
        ab = self.margins(items)
        ba = self.margins([(p, y, x) for p, x, y in items])
        verdicts = []
        for m1, m2 in zip(ab, ba, strict=True):
            first_wins = m1 > 0 and m2 < 0
            second_wins = m1 < 0 and m2 > 0
            verdicts.append(Verdict(1 if first_wins else -1 if second_wins else 0, float(m1), float(m2)))
        return verdicts
