"""Step-by-step batched decoding for serving: rows with their own sampling settings, streamed out
token by token and stoppable one by one.

    DecodeRow(prompt_ids, params, seed, stop_ids, tokenizer)   one sequence to generate: its own
        temperature / top-k / top-p / repetition penalty / length / stop strings and generator
    decode(model, rows, pad_id, on_step)   generates every row of the batch together (left padded,
        KV cache, the shared prefill of `sampling.prefill`), calling `on_step()` after every token;
        a row that finishes (stop token, stop string, length) or is cancelled from another thread
        (`row.cancel()`: its client went away) idles on padding, and the loop ends when all have

The same per-row logic as `sampling.sample` (a prompt's sample depends on its seed, not on the
batch it shares); what differs is that rows of one batch may ask for different settings, and that
text is handed out while it is generated (detokenized incrementally, a partial UTF-8 character only
once whole): `DecodeRow.take_text()` returns what is new, holding back the end that may still
become a stop string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..config import SamplingConfig
from .sampling import choose_tokens, prefill, row_generators


class DecodeRow:
    def __init__(self, prompt_ids: Sequence[int], params: SamplingConfig, seed: int, stop_ids: Sequence[int],
                 tokenizer, index: int = 0):
        self.prompt_ids = list(prompt_ids)
        self.params, self.stop_ids, self.tokenizer = params, set(stop_ids), tokenizer
        self.generator = row_generators(seed, index + 1)[index]  # sample `index` of a request with this seed
        self.ids: list[int] = []
        self.text = ""
        self.finish: str | None = None  # "stop" | "length" | "cancelled"
        self._sent = 0
        self._hold = max((len(s) for s in params.stop), default=1) - 1  # chars that may begin a stop string
        self._prefix, self._read = 0, 0  # incremental detokenization (a few tokens decoded per step)

    def cancel(self) -> None:
        if self.finish is None:
            self.finish = "cancelled"

    def push(self, token: int) -> None:
        if self.finish is not None:
            return
        if token in self.stop_ids:
            self.finish = "stop"
            return
        self.ids.append(token)
        # decode only the last few tokens: the text they add, once it is no partial UTF-8 character
        before = self.tokenizer.decode(self.ids[self._prefix: self._read], skip_special_tokens=True)
        now = self.tokenizer.decode(self.ids[self._prefix:], skip_special_tokens=True)
        text, last = self.text, len(self.ids) >= self.params.max_new_tokens
        if len(now) > len(before) and (last or not now.endswith("\ufffd")):  # the last token: partial bytes too
            text += now[len(before):]
            self._prefix, self._read = self._read, len(self.ids)
        hits = [text.find(s) for s in self.params.stop if s in text]
        if hits:
            text, self.finish = text[: min(hits)], "stop"
        elif last:
            self.finish = "length"
        self.text = text

    def take_text(self) -> str:
        """The text generated since the last call that can no longer change."""
        end = len(self.text) if self.finish is not None else len(self.text) - self._hold
        if end <= self._sent:
            return ""
        out, self._sent = self.text[self._sent: end], end
        return out


@torch.no_grad()
def decode(model, rows: Sequence[DecodeRow], pad_id: int, on_step: Callable[[], None] = lambda: None) -> None:
    """Generate every row to its end (see the module doc); the model must be in eval mode."""
    device = next(model.parameters()).device
    width = max(len(r.prompt_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
        attn[i, width - len(r.prompt_ids):] = 1
    ids, attn = ids.to(device), attn.to(device)
    seq, past, step_ids = ids, None, ids
    while any(r.finish is None for r in rows):
        if past is None:
            logits, past = prefill(model, ids, attn)
        else:
            pos = (attn.cumsum(-1) - 1).clamp(min=0)[:, -1:]
            out = model(input_ids=step_ids, attention_mask=attn, position_ids=pos, past_key_values=past,
                        use_cache=True, logits_to_keep=1)
            past, logits = out.past_key_values, out.logits[:, -1, :]
        nxt = torch.full((len(rows),), pad_id, dtype=torch.long, device=device)
        for i, r in enumerate(rows):
            if r.finish is None:
                nxt[i] = choose_tokens(logits[i: i + 1], seq[i: i + 1], r.params, [r.generator])[0]
                r.push(int(nxt[i]))
        on_step()
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        step_ids = nxt[:, None]
