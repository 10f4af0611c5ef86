"""Rule-based labeler: a response's score is the weighted sum of simple, explainable rules.

Rules (config `prefs.label.rules`, see `config.RuleConfig`):
  starts_with / contains / regex   1 if the response matches, else 0
  length                           1 if min_chars <= len(response) <= max_chars, else 0
  bleu                             sentence BLEU / 100 against the record's `reference`
  rouge1 / rouge2 / rougeL         ROUGE F1 against the record's `reference`
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .records import InvalidRecord
from .text_metrics import bleu, rouge_l, rouge_n


def rule_value(rule, response: str, reference: str | None) -> float:
    kind = rule.kind
    if kind == "starts_with":
        return float(response.lstrip().startswith(rule.value))
    if kind == "contains":
        return float(rule.value in response)
    if kind == "regex":
        return float(re.search(rule.value, response) is not None)
    if kind == "length":
        lo = rule.min_chars if rule.min_chars is not None else 0
        hi = rule.max_chars if rule.max_chars is not None else float("inf")
        return float(lo <= len(response) <= hi)
    if reference is None:
        raise InvalidRecord("missing_reference", f"rule '{kind}' needs a 'reference' field")
    if kind == "bleu":
        return bleu(response, reference) / 100.0
    if kind == "rougeL":
        return rouge_l(response, reference)
    return rouge_n(response, reference, n=int(kind[-1]))


class RuleScorer:
    """Scores responses with the configured rules (no model)."""

    def __init__(self, rules: Sequence):
        if not rules:
            raise ValueError("the rule-based labeler needs at least one rule (prefs.label.rules)")
        for r in rules:
            if r.kind == "regex":
                try:
                    re.compile(r.value)
                except re.error as e:
                    raise ValueError(f"rule regex {r.value!r}: {e}") from None
        self.rules = list(rules)

    def score_one(self, response: str, reference: str | None = None) -> float:
        return sum(r.weight * rule_value(r, response, reference) for r in self.rules)

    def score(self, prompts: Sequence, responses: Sequence[str], normalize: bool = True,
              references: Sequence[str | None] | None = None) -> np.ndarray:
        refs = references if references is not None else [None] * len(responses)
        return np.array([self.score_one(r, ref) for r, ref in zip(responses, refs, strict=True)], dtype=np.float64)
