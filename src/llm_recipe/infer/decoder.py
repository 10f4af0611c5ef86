"""Step-by-step batched decoding for serving: rows with their own sampling settings, streamed out
token by token and stoppable one by one.

    DecodeRow(prompt_ids, params, seed, stop_ids, tokenizer)   one sequence to generate: its own
        temperature / top-k / top-p / repetition penalty / length / stop strings and generator
    decode(model, rows, pad_id, on_step)   generates every row of the batch together through the
        project's one decoding loop (`sampling.decode`), calling `on_step()` after every token; a row
        that finishes (stop token, stop string, length) or is cancelled from another thread
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
from .sampling import choose_tokens, left_pad, row_generators
from .sampling import decode as sampling_decode


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


def decode(model, rows: Sequence[DecodeRow], pad_id: int, on_step: Callable[[], None] = lambda: None) -> None:
    """Generate every row to its end with the project's one decoding loop (`sampling.decode`: left
    padding, shared prefill, KV cache): each row chooses its token with its own settings and
    generator, and its `push` decides when it ends (its stop tokens, stop strings, length, or a
    `cancel()` from another thread); `on_step()` runs once every row has its token of the step.
    The model must be in eval mode."""
    live = list(range(len(rows)))  # the rows the loop has not ended yet, in its order
    last: list[int] = []  # the last live row of the current step: on_step after it

    def choose(raw: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        out = torch.full((len(rows),), pad_id, dtype=torch.long, device=raw.device)
        for i in live:
            if rows[i].finish is None:  # a cancelled row waits for the loop to end it
                out[i] = choose_tokens(raw[i: i + 1], seq[i: i + 1], rows[i].params, [rows[i].generator])[0]
        last[:] = live[-1:]
        return out

    def ended(i: int, tokens: list[int]) -> bool:
        rows[i].push(tokens[-1])
        done = rows[i].finish is not None
        if done:
            live.remove(i)
        if last and i == last[0]:
            on_step()
        return done

    query, qmask = left_pad([r.prompt_ids for r in rows], pad_id)
    sampling_decode(model, query, qmask, max(r.params.max_new_tokens for r in rows), choose, stop_ids=[],
                    pad_id=pad_id, stop_string=ended)
