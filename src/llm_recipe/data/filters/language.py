"""Language ID with a probability threshold per language (py3langid, which ships its model).

`languages={"ja": 0.8, "en": 0.8}` keeps Japanese and English docs whose top language has at
least that probability. Every doc gets `meta.language` and `meta.language_score` (later
filters use them: the Gopher rules switch to CJK mode, the hiragana rule applies to `ja`).
Reason codes: `language_not_allowed` (top language not in the list), `language_low_score`.
An empty `languages` only annotates.

Backends: `py3langid` (default; its model ships in the wheel) or `fasttext` with a model file
the user provides (`model_path`: lid.176.bin / .ftz; nothing is downloaded).

py3langid walks the UTF-8 bytes in Python, so only the first `max_chars` characters are
classified (identification saturates long before; fastText-based filters do the same).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ...config.curate import LanguageConfig
from ..pipeline import Doc, Step, Tally


@cache
def _identifier():
    # Loaded once per process; kept off the step object so the step pickles small.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@cache
def _fasttext_model(path: str):
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: fastText language-ID model not found")
    try:
        import fasttext
    except ImportError:
        raise FileNotFoundError("language backend 'fasttext' needs `pip install fasttext-numpy2-wheel`") from None
    return fasttext.load_model(path)


def identify(text: str, backend: str = "py3langid", model_path: str | None = None) -> tuple[str, float]:
    if backend == "fasttext":
        labels, probs = _fasttext_model(str(model_path)).predict(text, k=1)
        return labels[0].removeprefix("__label__"), min(1.0, float(probs[0]))
    lang, score = _identifier().classify(text)
    return lang, float(score)


class LanguageFilter(Step):
    name = "language"
    config_class = LanguageConfig

    def __init__(self, config: LanguageConfig | None = None, /, **kw) -> None:
        super().__init__(config, **kw)
        c = self.config
        self.languages = dict(c.languages)
        self.max_chars, self.backend = c.max_chars, c.backend
        self.model_path = str(c.model_path) if c.model_path else None

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        kept = []
        for doc in batch:
            lang, score = identify(doc["text"][: self.max_chars].replace("\n", " "), self.backend,
                                   self.model_path)
            meta = doc.setdefault("meta", {})
            meta["language"], meta["language_score"] = lang, round(score, 4)
            if self.languages:
                if lang not in self.languages:
                    tally.drop(doc, "language_not_allowed", lang)
                    continue
                if score < self.languages[lang]:
                    tally.drop(doc, "language_low_score", f"{lang}:{score:.3f}")
                    continue
            kept.append(doc)
        return kept
