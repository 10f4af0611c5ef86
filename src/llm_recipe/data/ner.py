"""Optional NER-based redaction of person names and addresses (spaCy / GiNZA when installed).

`ner_unavailable(model)` says why the step cannot run (spaCy missing, model not installed) or
returns None; `curate` then leaves the step out and records the reason in stats.json
(`skipped_steps`) instead of failing or pretending. Nothing is downloaded: `model` is an
installed spaCy package name (`ja_ginza`, `en_core_web_sm`) or a local model directory.

Entity labels map to placeholders through `labels`; the defaults cover spaCy's English
`PERSON` and GiNZA's extended labels (`Person`, `Postal_Address`, ...). Place names (GPE,
City) are deliberately not redacted: they are content, not PII, in encyclopedic text.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..config.curate import NERConfig
from .pii import Redactor

DEFAULT_LABELS = {
    "PERSON": "<PERSON>",
    "Person": "<PERSON>",
    "Postal_Address": "<ADDRESS>",
    "Address": "<ADDRESS>",
    "ADDRESS": "<ADDRESS>",
}


def ner_unavailable(model: str) -> str | None:
    """None when `model` can be loaded, else a one-line reason."""
    if importlib.util.find_spec("spacy") is None:
        return "spaCy is not installed (pip install 'llm-recipe[ner]')"
    import spacy.util

    if Path(model).is_dir() or spacy.util.is_package(model):
        return None
    return f"spaCy model '{model}' is not installed (pip install it, or give a model directory)"


class NERRedactor(Redactor):
    name = "ner"
    config_class = NERConfig

    def __init__(self, config: NERConfig | None = None, /, *, nlp: Any = None, **kw) -> None:
        super().__init__(config, **kw)
        self.model = self.config.model
        self.labels = dict(DEFAULT_LABELS if self.config.labels is None else self.config.labels)
        self._nlp = nlp  # a loaded pipeline may be passed in (tests, notebooks)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if state.get("_nlp") is not None and state["model"]:
            state["_nlp"] = None  # workers load their own copy
        return state

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            why = ner_unavailable(self.model)
            if why:
                raise RuntimeError(f"NER step: {why}")
            import spacy

            self._nlp = spacy.load(self.model)
        return self._nlp

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        counts: dict[str, int] = {}
        parts, last = [], 0
        for ent in self.nlp(text).ents:
            ph = self.labels.get(ent.label_)
            if ph is None or ent.start_char < last:
                continue
            parts += [text[last : ent.start_char], ph]
            last = ent.end_char
            counts[ph.strip("<>")] = counts.get(ph.strip("<>"), 0) + 1
        return "".join(parts) + text[last:], counts
