"""DPO data: preference pairs -> (prompt, chosen, rejected) token ids -> one-row-per-pair batches.

    tokenize_dpo_pairs   render prompt / prompt+chosen / prompt+rejected with the chat format;
                         the completion starts where the tokenized prompt and prompt+response
                         diverge (TRL's rule, so a token merging across the boundary is trained);
                         pairs too long are truncated response-first (the responses lose their
                         end, never the prompt) and counted; unusable pairs counted by reason
    collate_shared       ONE row per pair: prompt, chosen, rejected (`train.shared_prompt`): chosen
                         and rejected come out of one forward pass that encodes the prompt once
    collate_split        TRL's layout (chosen rows, then rejected rows, right-padded); for
                         attention kernels that take no 4-D mask (flash-attention)

Both collates describe their targets the same way, so one loss function reads either:
`keep` (which positions need logits), and per target token `src` (its row in the flattened kept
logits), `tgt` (the token id) and `seq` (0..B-1 chosen of pair b, B..2B-1 rejected of pair b).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..preference.records import PreferencePair, SkipLog
from ..tokenizer.chat_formats import ChatFormat, TemplateError, render
from .shared_prompt import common_prefix_length, shared_rows


@dataclass
class DPOExample:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    ref_chosen: float | None = None  # reference log-probs, filled by `reference_logps`
    ref_rejected: float | None = None

    def __len__(self) -> int:  # tokens of the shared row
        return len(self.prompt_ids) + len(self.chosen_ids) + len(self.rejected_ids)


@dataclass
class KTOExample(DPOExample):
    """A KTO record (`train.kto`): "chosen" is the completion, "rejected" a mismatched completion
    (the KL estimate's), `label` whether the completion is desirable."""
    label: bool = True


@dataclass
class TruncationStats:
    truncated_pairs: int = 0
    truncated_tokens: int = 0


def _messages(prompt: str | list[dict]) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def _where(p: PreferencePair, i: int) -> str:
    return str(p.meta.get("source", f"pair {i}"))


def tokenize_dpo_pairs(pairs: Sequence[PreferencePair], tokenizer, fmt: ChatFormat, max_length: int,
                       log: SkipLog | None = None, trunc: TruncationStats | None = None) -> list[DPOExample]:
    """Tokenize pairs. `max_length` bounds prompt + each response (as TRL's `max_length`)."""
    log = log if log is not None else SkipLog()
    trunc = trunc if trunc is not None else TruncationStats()
    out: list[DPOExample] = []
    bs = 256
    for start in tqdm(range(0, len(pairs), bs), desc="tokenize dpo", leave=False, disable=len(pairs) < 4096):
        chunk, texts = [], []
        for i, p in enumerate(pairs[start : start + bs], start=start):
            msgs = _messages(p.prompt)
            try:
                texts += [render(fmt, msgs, tokenizer, add_generation_prompt=True).text,
                          render(fmt, [*msgs, {"role": "assistant", "content": p.chosen}], tokenizer).text,
                          render(fmt, [*msgs, {"role": "assistant", "content": p.rejected}], tokenizer).text]
            except TemplateError as e:
                log.skip("template_error", _where(p, i), str(e))
                continue
            chunk.append((i, p))
        if not chunk:
            continue
        # Rendered text already holds the format's special tokens (BOS included): add none.
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        for k, (i, p) in enumerate(chunk):
            prompt, full_c, full_r = ids[3 * k], ids[3 * k + 1], ids[3 * k + 2]
            n = min(common_prefix_length(prompt, full_c), common_prefix_length(prompt, full_r))
            c, r = full_c[n:], full_r[n:]
            if n == 0:  # nothing to predict the first response token from
                log.skip("empty_prompt", _where(p, i), "no prompt tokens after rendering")
                continue
            if not c or not r:
                log.skip("empty_response", _where(p, i), "no response tokens after rendering")
                continue
            room = max_length - n
            if room < 1:
                log.skip("prompt_too_long", _where(p, i), f"prompt of {n} tokens >= max_length {max_length}")
                continue
            if len(c) > room or len(r) > room:
                cut = max(len(c) - room, 0) + max(len(r) - room, 0)
                c, r = c[:room], r[:room]
                trunc.truncated_pairs += 1
                trunc.truncated_tokens += cut
            if c == r:
                log.skip("chosen_equals_rejected", _where(p, i), "identical tokens (after truncation)")
                continue
            ex = DPOExample(list(prompt[:n]), list(c), list(r))
            if "label" in p.meta:  # a KTO record laid out as a pair (`train.kto`): the completion's label
                ex = KTOExample(ex.prompt_ids, ex.chosen_ids, ex.rejected_ids, label=bool(p.meta["label"]))
            out.append(ex)
            log.kept += 1
    return out


def _targets(src_rows: list[np.ndarray], tgts: list[list[int]], keep: np.ndarray) -> dict[str, torch.Tensor]:
    """Map per-sequence (row, position) sources to rows of the flattened kept logits."""
    flat = np.cumsum(keep.reshape(-1)) - 1  # kept position -> row in model(...).logits
    src = np.concatenate(src_rows)
    return {"src": torch.from_numpy(flat[src]).long(), "tgt": torch.tensor([t for ts in tgts for t in ts]),
            "keep": torch.from_numpy(keep)}


def _finish(batch: dict, examples: Sequence[DPOExample], seq_ids: list[int]) -> dict:
    batch["seq"] = torch.tensor(seq_ids)
    batch["n_chosen"] = torch.tensor([len(e.chosen_ids) for e in examples], dtype=torch.float32)
    batch["n_rejected"] = torch.tensor([len(e.rejected_ids) for e in examples], dtype=torch.float32)
    if all(e.ref_chosen is not None for e in examples):
        batch["ref_chosen"] = torch.tensor([e.ref_chosen for e in examples], dtype=torch.float32)
        batch["ref_rejected"] = torch.tensor([e.ref_rejected for e in examples], dtype=torch.float32)
    batch["loss_tokens"] = len(examples)  # the loss is a mean over pairs: the loop weights batches by pairs
    return batch


def collate_shared(examples: Sequence[DPOExample], pad_id: int) -> dict:
    """One row per pair (`train.shared_prompt`); `allowed` is the boolean 4-D attention mask."""
    n = len(examples)
    rows = shared_rows([e.prompt_ids for e in examples], [e.chosen_ids for e in examples],
                       [e.rejected_ids for e in examples], pad_id)
    width = rows["input_ids"].shape[1]
    keep = np.zeros((n, width), dtype=bool)
    srcs: list[np.ndarray] = [np.zeros(0, np.int64)] * (2 * n)
    tgts: list[list[int]] = [[]] * (2 * n)
    for b, e in enumerate(examples):
        p, lc, lr = len(e.prompt_ids), len(e.chosen_ids), len(e.rejected_ids)
        # Token j of a response is predicted from the position before it; for j = 0 that is the
        # last prompt token, shared by both sides (one logit row, two targets).
        src_c = b * width + np.arange(p - 1, p - 1 + lc)
        src_r = b * width + np.concatenate([[p - 1], np.arange(p + lc, p + lc + lr - 1)])
        keep.reshape(-1)[src_c] = True
        keep.reshape(-1)[src_r] = True
        srcs[b], srcs[n + b] = src_c, src_r
        tgts[b], tgts[n + b] = e.chosen_ids, e.rejected_ids
    seq_ids = [b for b in range(n) for _ in examples[b].chosen_ids] + \
              [n + b for b in range(n) for _ in examples[b].rejected_ids]
    batch = {"input_ids": rows["input_ids"], "position_ids": rows["position_ids"], "allowed": rows["allowed"],
             **_targets(srcs, tgts, keep), "n_tokens": sum(len(e) for e in examples)}
    return _finish(batch, examples, seq_ids)


def collate_split(examples: Sequence[DPOExample], pad_id: int) -> dict:
    """Chosen rows then rejected rows, right-padded (TRL's `DataCollatorForPreference` layout)."""
    n = len(examples)
    seqs = [e.prompt_ids + e.chosen_ids for e in examples] + [e.prompt_ids + e.rejected_ids for e in examples]
    resp = [e.chosen_ids for e in examples] + [e.rejected_ids for e in examples]
    width = max(len(s) for s in seqs)
    ids = np.full((2 * n, width), pad_id, dtype=np.int64)
    attn = np.zeros((2 * n, width), dtype=np.int64)
    keep = np.zeros((2 * n, width), dtype=bool)
    srcs, seq_ids = [], []
    for i, (s, t) in enumerate(zip(seqs, resp, strict=True)):
        ids[i, : len(s)], attn[i, : len(s)] = s, 1
        p = len(s) - len(t)
        src = i * width + np.arange(p - 1, len(s) - 1)
        keep.reshape(-1)[src] = True
        srcs.append(src)
        seq_ids += [i] * len(t)
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(attn),
             **_targets(srcs, resp, keep), "n_tokens": int(attn.sum())}
    return _finish(batch, examples, seq_ids)


def collate_pairs(examples: Sequence[DPOExample], pad_id: int, share_prompt: bool) -> dict:
    """The batch layout a preference objective asks for: one row per pair, or TRL's split rows."""
    return (collate_shared if share_prompt else collate_split)(examples, pad_id)
