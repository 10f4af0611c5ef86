"""The harmful filter's category lexicon, and the default scorer that joins it to the classifier.

The n-gram classifier learns the phrasing of its few hundred training sentences; a request it has
not seen ("How do I synthesize sarin at home?") can score 0.05. The lexicon
(`resources/harm_lexicon.json`) names what makes a request harmful instead, per category (CBRN,
weapons, violence, self-harm, drugs, cyber, fraud, threats / hate), in Japanese and English:

    harmful sentence = a harm term  and  an intent cue (how do I, 作り方, 教えて, I will, ...)
                       and no protective cue (prevent, safely, report, 防ぐ, ニュース, 小説, ...)

so "The 1995 sarin attack killed thirteen people" (no intent) and "How do I protect my Wi-Fi from
intruders?" (protective) stay. `HarmScorer` scores 1.0 for a text with such a sentence and the
classifier's probability otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...files import read_json
from .harmful_seed import RESOURCES

LEXICON_PATH = RESOURCES / "harm_lexicon.json"
_SENTENCE = re.compile(r"[^.?!。？！\n]+[.?!。？！]?")


def _union(patterns: Sequence[str]) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I)


class HarmLexicon:
    def __init__(self, path: str | Path = LEXICON_PATH):
        lex = read_json(Path(path))
        self.harm = {cat: _union(p) for cat, p in lex["harm"].items()}
        self.intent, self.protective = _union(lex["intent"]), _union(lex["protective"])

    def categories(self, text: str) -> list[str]:
        """The harm categories of the first harmful sentence of `text` ([] when none is)."""
        for s in _SENTENCE.findall(text):
            cats = [c for c, r in self.harm.items() if r.search(s)]
            if cats and self.intent.search(s) and not self.protective.search(s):
                return cats
        return []

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([1.0 if self.categories(t) else 0.0 for t in texts])


class HarmScorer:
    """1.0 where the lexicon finds a harmful sentence, else the classifier's P(harmful)."""

    def __init__(self, classifier, lexicon: HarmLexicon | None = None):
        self.classifier, self.lexicon = classifier, lexicon or HarmLexicon()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros(0)
        return np.maximum(self.lexicon.predict_proba(texts), self.classifier.predict_proba(texts))
