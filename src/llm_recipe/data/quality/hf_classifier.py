"""Any Hugging Face text-classification model directory as a scorer: P(positive label) per text.

The harmful-content filter takes either the shipped seed classifier or such a directory (e.g.
a fine-tuned toxicity model copied to local disk). The positive label is found by name in the
model's `id2label` (case-insensitive) or given as an index; a model whose labels do not
contain it is a clear error listing the labels it has.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class HFTextClassifier:
    kind = "hf"

    def __init__(self, model_dir: str | os.PathLike, positive_label: str | int = "harmful",
                 max_length: int = 512, batch_size: int = 16, device: str = "cpu",
                 trust_remote_code: bool = False):
        self.model_dir = str(model_dir)
        if not Path(self.model_dir).is_dir():
            raise FileNotFoundError(f"{self.model_dir}: no such model directory")
        self.positive_label, self.max_length, self.batch_size = positive_label, max_length, batch_size
        self.device, self.trust_remote_code = device, trust_remote_code
        self._model = self._tok = None
        self._pos: int | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_tok": None}

    def _load(self):
        if self._model is None:
            from transformers import AutoModelForSequenceClassification

            from ...models.loading import load_tokenizer

            self._tok = load_tokenizer(self.model_dir, self.trust_remote_code)
            self._tok.padding_side = "right"
            model = AutoModelForSequenceClassification.from_pretrained(
                self.model_dir, trust_remote_code=self.trust_remote_code)
            if model.config.pad_token_id is None:  # decoder classifiers pool the last non-pad token
                model.config.pad_token_id = self._tok.pad_token_id
            self._model = model.to(self.device).eval()
            self._pos = self._label_index(model.config.id2label or {})
        return self._model, self._tok

    def _label_index(self, id2label: dict) -> int:
        labels = {int(k): str(v) for k, v in id2label.items()}
        if isinstance(self.positive_label, int):
            if self.positive_label not in labels:
                raise ValueError(f"{self.model_dir}: no label index {self.positive_label} (labels: {labels})")
            return self.positive_label
        for i, name in labels.items():
            if name.lower() == str(self.positive_label).lower():
                return i
        raise ValueError(f"{self.model_dir}: no label '{self.positive_label}' (labels: {sorted(labels.values())})")

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model, tok = self._load()
        out = np.zeros(len(texts))
        for lo in range(0, len(texts), self.batch_size):
            enc = tok(list(texts[lo : lo + self.batch_size]), return_tensors="pt", padding=True,
                      truncation=True, max_length=self.max_length).to(self.device)
            with torch.inference_mode():
                logits = model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}).logits
            out[lo : lo + len(logits)] = torch.softmax(logits.float(), -1)[:, self._pos].cpu().numpy()
        return out
