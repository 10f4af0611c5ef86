"""Perplexity scorers for the perplexity filter: a causal LM, or a character n-gram LM.

`CausalLMScorer`  any causal LM directory `AutoModelForCausalLM.from_pretrained` loads (our own
                  tiny pretrained model, or any HF model): per document exp(mean token NLL).
`CharNgramLM`     a KenLM-style character n-gram model trained here in numpy (interpolated
                  absolute discounting, orders 1..N, n-gram counts stored as sorted hashed keys)
                  for CPU-only pipelines: CCNet-style perplexity filtering without torch. Works
                  for Japanese as is (characters, no tokenizer). Saved as safetensors + JSON.

Both expose `perplexity(texts) -> np.ndarray`; NaN marks a document too short to score.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...files import read_json
from ..dedup.shingles import fmix64, normalize_text

_POLY = np.uint64(0x9E3779B97F4A7C15)
_BOS, _EOS = 0x110000, 0x110001  # just past the Unicode range: never a real character


class CausalLMScorer:
    kind = "causal_lm"

    def __init__(self, model_dir: str | os.PathLike, max_length: int = 512, batch_size: int = 8,
                 device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False):
        self.model_dir = str(model_dir)
        if not Path(self.model_dir).is_dir():
            raise FileNotFoundError(f"{self.model_dir}: no such model directory")
        self.max_length, self.batch_size = max_length, batch_size
        self.device, self.dtype, self.trust_remote_code = device, dtype, trust_remote_code
        self._model = self._tok = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_tok": None}  # workers load their own copy

    def _load(self):
        if self._model is None:
            from ...models.loading import load_causal_lm, load_tokenizer

            self._tok = load_tokenizer(self.model_dir, self.trust_remote_code)
            self._tok.padding_side = "right"
            self._model = load_causal_lm(self.model_dir, self.dtype, self.trust_remote_code).to(self.device).eval()
        return self._model, self._tok

    def perplexity(self, texts: Sequence[str]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        model, tok = self._load()
        out = np.full(len(texts), np.nan)
        for lo in range(0, len(texts), self.batch_size):
            enc = tok(list(texts[lo : lo + self.batch_size]), return_tensors="pt", padding=True,
                      truncation=True, max_length=self.max_length).to(self.device)
            with torch.inference_mode():
                logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            labels = enc["input_ids"][:, 1:]
            mask = enc["attention_mask"][:, 1:].float()
            nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels, reduction="none")
            n = mask.sum(1)
            mean = (nll * mask).sum(1) / n.clamp(min=1)
            ppl = torch.exp(mean).cpu().numpy()
            ppl[n.cpu().numpy() == 0] = np.nan  # a single token: nothing to predict
            out[lo : lo + len(ppl)] = ppl
        return out


def _char_codes(texts: Sequence[str], order: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes of `BOS*(order-1) text EOS` per text, concatenated; and the scored count per text."""
    pad = [_BOS] * (order - 1)
    codes: list[int] = []
    counts = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        t = normalize_text(t, lowercase=False)
        codes.extend(pad)
        codes.extend(map(ord, t))
        codes.append(_EOS)
        counts[i] = len(t) + 1
    return np.array(codes, dtype=np.uint64), counts


def _gram_keys(codes: np.ndarray, order: int) -> list[np.ndarray]:
    """keys[k][t]: hash of the (k+1)-gram ending at position t (t >= k), for k < order."""
    keys, p = [], np.zeros(len(codes), dtype=np.uint64)
    for k in range(order):
        nxt = codes + np.uint64(1)
        nxt[k:] += p[k - 1 : len(codes) - 1] * _POLY if k else np.uint64(0)
        p = nxt
        keys.append(fmix64(p + np.uint64(((k + 1) * 0xD6E8FEB86659FD93) % 2**64)))  # order in the key
    return keys


class CharNgramLM:
    kind = "char_ngram"

    def __init__(self, order: int = 5, discount: float = 0.75):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order, self.discount = order, discount
        self.tables: list[dict[str, np.ndarray]] = []
        self.vocab = 0

    def fit(self, texts: Sequence[str]) -> CharNgramLM:
        codes, _ = _char_codes(texts, self.order)
        scored = codes != _BOS  # targets: real characters and EOS
        keys = _gram_keys(codes, self.order)
        self.vocab = len(np.unique(codes[scored])) + 1  # +1: an unseen character
        self.tables = []
        for k in range(self.order):
            ng, first, ng_count = np.unique(keys[k][scored], return_index=True, return_counts=True)
            # context of a k+1-gram = the k-gram ending one position earlier (k = 0: empty)
            ctx_of = keys[k - 1][np.flatnonzero(scored) - 1] if k else np.zeros(int(scored.sum()), np.uint64)
            ctx, ctx_count = np.unique(ctx_of, return_counts=True)
            # distinct continuations per context: how much mass the lower order gets
            tk, tc = np.unique(ctx_of[first], return_counts=True)
            types = np.zeros(len(ctx), dtype=np.int64)
            types[np.searchsorted(ctx, tk)] = tc
            self.tables.append({"ng": ng, "ng_count": ng_count.astype(np.uint32), "ctx": ctx,
                                "ctx_count": ctx_count.astype(np.uint32), "ctx_types": types.astype(np.uint32)})
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, table: np.ndarray, values: np.ndarray) -> np.ndarray:
        if len(table) == 0:
            return np.zeros(len(keys))
        pos = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        return np.where(table[pos] == keys, values[pos], 0).astype(np.float64)

    def log_probs(self, codes: np.ndarray) -> np.ndarray:
        """Natural-log probability of every scored position (non-BOS) of `codes`."""
        if not self.tables:
            raise RuntimeError("language model is not trained (fit() or load() first)")
        scored = np.flatnonzero(codes != _BOS)
        keys = _gram_keys(codes, self.order)
        p = np.full(len(scored), 1.0 / self.vocab)
        d = self.discount
        for k, tab in enumerate(self.tables):
            ctx = keys[k - 1][scored - 1] if k else np.zeros(len(scored), np.uint64)
            c_ctx = self._lookup(ctx, tab["ctx"], tab["ctx_count"])
            c_ng = self._lookup(keys[k][scored], tab["ng"], tab["ng_count"])
            types = self._lookup(ctx, tab["ctx"], tab["ctx_types"])
            seen = c_ctx > 0
            safe = np.where(seen, c_ctx, 1.0)
            higher = np.maximum(c_ng - d, 0) / safe + d * types / safe * p
            p = np.where(seen, higher, p)
        return np.log(p)

    def perplexity(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros(0)
        codes, counts = _char_codes(texts, self.order)
        lp = self.log_probs(codes)
        ends = np.cumsum(counts)
        sums = np.add.reduceat(lp, ends - counts)
        return np.exp(-sums / counts)

    def save(self, directory: str | os.PathLike) -> Path:
        from safetensors.numpy import save_file

        from ...files import write_json

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {f"{k}.{name}": arr for k, t in enumerate(self.tables) for name, arr in t.items()}
        tmp = d / ".ngram.safetensors.tmp"
        save_file(tensors, str(tmp))
        os.replace(tmp, d / "ngram.safetensors")
        write_json(d / "ngram_lm.json", {"type": "char-ngram-lm", "order": self.order,
                                         "discount": self.discount, "vocab": self.vocab})
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> CharNgramLM:
        from safetensors.numpy import load_file

        d = Path(directory)
        cfg = read_json(d / "ngram_lm.json")
        lm = cls(cfg["order"], cfg["discount"])
        lm.vocab = cfg["vocab"]
        w = load_file(str(d / "ngram.safetensors"))
        lm.tables = [{name: w[f"{k}.{name}"] for name in ("ng", "ng_count", "ctx", "ctx_count", "ctx_types")}
                     for k in range(lm.order)]
        return lm


def load_scorer(path: str | os.PathLike, **kw) -> CausalLMScorer | CharNgramLM:
    """A saved `CharNgramLM` directory, or any causal LM directory."""
    if (Path(path) / "ngram_lm.json").exists():
        return CharNgramLM.load(path)
    return CausalLMScorer(path, **kw)
