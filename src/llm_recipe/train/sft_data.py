"""SFT data: records -> validated conversations -> tokens with a loss mask -> (packed) rows.

    read_sft_records     records (any `record_sources` container) in every shape TRL's SFTTrainer
                         takes, and more -> conversations; every unusable record is counted by
                         reason with file:line (or row):
                           messages      [{"role", "content"}], incl. `tool` turns and assistant
                                         `tool_calls` (+ a `tools` column of function schemas)
                           prompt/completion  message lists (TRL conversational: chat template), or
                                         strings (TRL standard: plain text, loss on the completion)
                           text          language modeling: every token is trained, no template
                           ShareGPT `conversations`, Alpaca `instruction`/`input`/`output`
    tokenize_examples    render with a chat format, tokenize ONCE with offsets, labels = -100 for
                         every token outside the assistant spans (boundary-safe: no re-tokenizing
                         of pieces); overlong conversations skipped or truncated by policy
    pack_examples        best-fit-decreasing packing of conversations into rows of <= max_length
                         tokens, with per-conversation position ids (the attention mask is then
                         block-diagonal: no token attends across conversations)
    collate_rows         pad a batch of rows; padding is its own segment with labels -100
    padding_report       how much of a batch is padding under each batching strategy
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from jinja2.exceptions import TemplateError as JinjaTemplateError
from tqdm.auto import tqdm

from ..files import BadLine
from ..preference.text_metrics import has_japanese
from ..record_sources import check_source, iter_source
from ..splits import split_by_key
from ..tokenizer.chat_formats import ChatFormat, TemplateError, render, tool_support
from .loop import length_grouped_batches
from .sft_coverage import CATEGORIES, infer_category

IGNORE = -100
ROLES = ("system", "user", "assistant", "tool")
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant"}


@dataclass
class DataStats:
    """Counts of what happened to every record: kept, skipped (by reason), modified (by reason)."""

    records: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    modified: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)  # first few "file:line: reason"

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < 20:
            self.examples.append(f"{where}: {reason}" + (f" ({detail})" if detail else ""))

    def modify(self, reason: str, n: int = 1) -> None:
        self.modified[reason] = self.modified.get(reason, 0) + n


@dataclass
class Conversation:
    messages: list[dict]
    category: str | None = None
    lang: str = "en"
    where: str = ""
    category_inferred: bool = False
    answer_key: str | None = None  # the fact a correct answer states (a record's optional "answer_key")
    text: str | None = None  # plain text, no chat template (TRL's standard "text" / prompt-completion)
    prompt_text: str | None = None  # the untrained start of `text` (standard prompt-completion)
    tools: list | None = None  # function schemas the chat template renders (TRL's "tools" column)

    @property
    def uses_tools(self) -> bool:
        return bool(self.tools) or any(m["role"] == "tool" or m.get("tool_calls") for m in self.messages)



def first_user_message(c: Conversation) -> str:
    return c.text if c.text is not None else next(m["content"] for m in c.messages if m["role"] == "user")


def split_conversations(convs: Sequence[Conversation], eval_fraction: float, seed: int):
    """(train, held-out) by a hash of the first user message: identical prompts never straddle it."""
    return split_by_key(convs, first_user_message, eval_fraction, seed)

class _Skip(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail


# The record shapes SFT reads, by the columns that make them (named when a record has none of them)
SFT_COLUMNS = "messages | conversations | instruction+output | prompt+completion | text"


def _messages_of(rec: dict) -> list:
    if "messages" in rec:
        return rec["messages"]
    if "conversations" in rec:  # ShareGPT: [{"from": "human", "value": ...}]
        convs = rec["conversations"]
        if isinstance(convs, list):
            return [{"role": m.get("from", m.get("role")), "content": m.get("value", m.get("content"))}
                    if isinstance(m, dict) else m for m in convs]
        return convs
    if "instruction" in rec and ("output" in rec or "response" in rec):
        user = {"role": "user", "content": rec["instruction"]}
        if rec.get("input"):
            user["input"] = rec["input"]
        msgs = [user, {"role": "assistant", "content": rec.get("output", rec.get("response"))}]
        return ([{"role": "system", "content": rec["system"]}] if rec.get("system") else []) + msgs
    if "prompt" in rec and "completion" in rec:  # TRL conversational prompt-completion (lists)
        prompt, completion = rec["prompt"], rec["completion"]
        prompt = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        completion = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        return [*prompt, *completion]
    raise _Skip("missing_fields", f"columns {', '.join(map(str, rec)) or 'none'}; SFT reads {SFT_COLUMNS}")


def _plain_text_record(rec: dict, where: str) -> Conversation | None:
    """TRL's standard (non-conversational) records, trained as plain text without a chat template:
    {"text"} whole, {"prompt": str, "completion": str} with the loss on the completion."""
    if isinstance(rec.get("prompt"), str) and isinstance(rec.get("completion"), str):
        if not rec["prompt"].strip():
            raise _Skip("empty_prompt")
        if not rec["completion"].strip():
            raise _Skip("empty_response")
        text, prompt = rec["prompt"] + rec["completion"], rec["prompt"]
    elif "text" in rec and not any(k in rec for k in ("messages", "conversations", "instruction", "prompt")):
        if not isinstance(rec["text"], str):
            raise _Skip("bad_text_type")
        if not rec["text"].strip():
            raise _Skip("empty_text")
        text, prompt = rec["text"], None
    else:
        return None
    labelled = rec.get("category") in CATEGORIES
    return Conversation([], rec["category"] if labelled else "lm", "ja" if has_japanese(text) else "en", where,
                        category_inferred=not labelled, text=text, prompt_text=prompt)


def to_conversation(rec: dict, stats: DataStats, where: str = "", system_prompt: str | None = None) -> Conversation:
    """Validate one record into a Conversation, or raise _Skip(reason). Modifications of records
    that are kept are counted."""
    mods: list[str] = []
    if (plain := _plain_text_record(rec, where)) is not None:
        return plain
    raw = _messages_of(rec)
    if not isinstance(raw, list) or not raw:
        raise _Skip("missing_fields")
    msgs: list[dict] = []
    for m in raw:
        calls = m.get("tool_calls") if isinstance(m, dict) else None
        if isinstance(m, dict) and calls and m.get("content") is None:
            m = {**m, "content": ""}  # an assistant turn that only calls a tool
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
            raise _Skip("bad_message")
        role = ROLE_ALIASES.get(m["role"].lower(), m["role"].lower())
        if role not in ROLES:
            raise _Skip("unknown_role")
        msg = {"role": role, "content": m["content"]}
        if role == "user" and isinstance(m.get("input"), str) and m["input"].strip():
            msg["input"] = m["input"]
        if role == "assistant" and calls:
            msg["tool_calls"] = calls
        if role == "tool" and m.get("name"):
            msg["name"] = m["name"]
        msgs.append(msg)
    if msgs[0]["role"] == "system" and not msgs[0]["content"].strip():
        msgs.pop(0)
        mods.append("empty_system_removed")
    if not any(m["role"] == "assistant" for m in msgs):
        raise _Skip("no_assistant_turn")
    last_assistant = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    if last_assistant < len(msgs) - 1:  # trailing user turns have nothing to learn from
        mods.append("trailing_turns_removed")
        msgs = msgs[: last_assistant + 1]
    body = msgs[1:] if msgs[0]["role"] == "system" else msgs
    # user, assistant, user, assistant, ... (Llama-2 cannot express anything else); tool results
    # may follow an assistant turn and are answered by the next assistant turn.
    if not _turn_order_ok([m["role"] for m in body]):
        raise _Skip("bad_turn_order")
    for m in body:
        if not m["content"].strip() and not m.get("tool_calls"):
            raise _Skip("empty_response" if m["role"] == "assistant" else "empty_prompt")
    if system_prompt and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": system_prompt})
        mods.append("default_system_added")
    first_user = body[0]["content"]
    labelled = rec.get("category") in CATEGORIES
    category = rec["category"] if labelled else infer_category(msgs)
    lang = rec.get("lang") if rec.get("lang") in ("ja", "en") else ("ja" if has_japanese(first_user) else "en")
    for m in mods:
        stats.modify(m)
    key = rec.get("answer_key") if isinstance(rec.get("answer_key"), str) else None
    tools = rec.get("tools")
    if isinstance(tools, str) and tools.strip():  # schemas kept as a JSON string (a `datasets` column)
        try:
            tools = json.loads(tools)
        except ValueError:
            raise _Skip("bad_tools") from None
    tools = tools if isinstance(tools, list) and tools else None
    return Conversation(msgs, category, lang, where, category_inferred=not labelled, answer_key=key, tools=tools)


_NEXT_ROLES = {"user": ("assistant",), "assistant": ("user", "tool"), "tool": ("tool", "assistant")}


def _turn_order_ok(roles: list[str]) -> bool:
    if not roles or roles[0] != "user":
        return False
    return all(b in _NEXT_ROLES.get(a, ()) for a, b in zip(roles, roles[1:], strict=False))


def conversations_from_records(records: Iterable[tuple[str, dict | BadLine]], stats: DataStats,
                               system_prompt: str | None = None) -> list[Conversation]:
    out = []
    for where, rec in records:
        stats.records += 1
        if isinstance(rec, BadLine):
            stats.skip(rec.reason, where)
            continue
        try:
            out.append(to_conversation(rec, stats, where, system_prompt))
        except _Skip as s:
            stats.skip(s.reason, where, s.detail)
    return out


def read_sft_records(files: Sequence[str | os.PathLike], stats: DataStats,
                     system_prompt: str | None = None) -> list[Conversation]:
    def records():
        for f in files:
            check_source(f, "SFT data")
            yield from iter_source(f)

    return conversations_from_records(records(), stats, system_prompt)


@dataclass
class SFTSplit:
    train: list[Conversation]
    held_out: list[Conversation]  # never trained on: SFT's eval loss, held-out prompts of later stages
    stats: DataStats  # every record read, skipped or modified
    inferred_categories: int


def split_sft_data(cfg, seed: int, records: Iterable[tuple[str, dict | BadLine]] | None = None) -> SFTSplit:
    """The one SFT split of the project (`cfg`: an `SFTConfig`): the records (`records`, e.g. the
    bundled set the SFT stage generates, else `cfg.data` files) -> conversations -> (train,
    held-out) by a hash of the first user message. SFT trains on `train`; the eval stage, the DPO
    style demo and online DPO's prompts read `held_out` / `train` from here, so the split is the
    same everywhere."""
    stats = DataStats()
    if records is not None:
        convs = conversations_from_records(records, stats, cfg.system_prompt)
    elif cfg.data in ("bundled", "hh"):
        raise ValueError(f"sft.data '{cfg.data}' is made by the SFT stage (llm_recipe.stages.sft): "
                         "pass its records (demo.sft_set.sft_records, stages.hh.hh_sft_data) or give data files")
    else:
        convs = read_sft_records(cfg.data, stats, cfg.system_prompt)
    train, held = split_conversations(convs, cfg.eval_fraction, seed)
    return SFTSplit(train, held, stats, sum(c.category_inferred for c in convs))


@dataclass
class Example:
    """One tokenized conversation. `labels` are unshifted (HF convention): labels[t] = input_ids[t]
    where token t is assistant text, else -100; the loss predicts labels[t] from tokens < t."""

    input_ids: np.ndarray  # int32
    labels: np.ndarray  # int32
    category: str | None = None
    lang: str = "en"

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_trained(self) -> int:
        return int((self.labels != IGNORE).sum())


def span_mask(offsets: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """True for tokens whose characters overlap any span. Zero-width tokens (an added BOS) never do.

    Overlap rather than containment: a token that merges the last prompt character with the first
    answer character still has to be produced by the model, so it is trained (as transformers'
    `return_assistant_tokens_mask` does).
    """
    if len(offsets) == 0 or not spans:
        return np.zeros(len(offsets), dtype=bool)
    sp = np.asarray(spans, dtype=np.int64)
    start, end = offsets[:, 0:1], offsets[:, 1:2]
    return ((start < sp[None, :, 1]) & (end > sp[None, :, 0])).any(axis=1)


def tokenize_examples(
    convs: Sequence[Conversation],
    tokenizer,
    fmt: ChatFormat,
    *,
    max_length: int,
    overlong: str = "skip",
    train_on: str = "all",
    stats: DataStats | None = None,
    batch_size: int = 512,
) -> list[Example]:
    """Render, tokenize with offsets and mask. `overlong`: 'skip' | 'truncate' (keep the start)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("SFT needs a fast tokenizer (offsets are used to build the loss mask)")
    stats = stats if stats is not None else DataStats()
    out: list[Example] = []
    tool_parts: dict[str, bool] = {}  # what the format renders, probed on the first tool record
    for i in tqdm(range(0, len(convs), batch_size), desc="tokenize sft", leave=False, disable=len(convs) < 4096):
        chunk, texts, spans = [], [], []
        for c in convs[i : i + batch_size]:
            if c.text is not None:  # plain text and eos, as TRL tokenizes standard records
                ids = np.asarray(tokenizer(c.text)["input_ids"] + [tokenizer.eos_token_id], dtype=np.int32)
                labels = ids.copy()
                if c.prompt_text is not None:  # the loss is on the completion only
                    labels[: len(tokenizer(c.prompt_text)["input_ids"])] = IGNORE
                if (ex := _fit(ids, labels, c, max_length, overlong, stats)) is not None:
                    out.append(ex)
                continue
            if c.uses_tools and (dropped := _tool_parts_dropped(c, fmt, tokenizer, tool_parts)):
                stats.skip(f"template_drops_{dropped}", c.where)  # it would train a turn without them
                continue
            try:
                r = render(fmt, c.messages, tokenizer, tools=c.tools)
            except (TemplateError, JinjaTemplateError):
                stats.skip("template_error", c.where)
                continue
            if not r.spans:
                stats.skip("no_assistant_turn", c.where)
                continue
            chunk.append(c)
            texts.append(r.text)
            spans.append(r.spans[-1:] if train_on == "last" else r.spans)
        if not texts:
            continue
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        for c, ids, offs, sp in zip(chunk, enc["input_ids"], enc["offset_mapping"], spans, strict=True):
            ids = np.asarray(ids, dtype=np.int32)
            mask = span_mask(np.asarray(offs, dtype=np.int64).reshape(-1, 2), sp)
            labels = np.where(mask, ids, IGNORE).astype(np.int32)
            if (ex := _fit(ids, labels, c, max_length, overlong, stats)) is not None:
                out.append(ex)
    stats.kept = len(out)
    return out


def _tool_parts_dropped(c: Conversation, fmt: ChatFormat, tokenizer, support: dict[str, bool]) -> str | None:
    """The first tool part of `c` the format's template does not render (`tool_support`), or None.
    `support` caches the probe for the format."""
    if not support:
        support.update(tool_support(fmt, tokenizer))
    used = {"tool_calls": any(m.get("tool_calls") for m in c.messages),
            "tool_turns": any(m["role"] == "tool" for m in c.messages), "tools": bool(c.tools)}
    return next((part for part, u in used.items() if u and not support[part]), None)


def _fit(ids: np.ndarray, labels: np.ndarray, c: Conversation, max_length: int, overlong: str,
         stats: DataStats) -> Example | None:
    """The example within max_length (skipped or truncated by policy, counted), or None."""
    if len(ids) > max_length:
        if overlong == "skip":
            stats.skip("too_long", c.where)
            return None
        if not (labels[:max_length] != IGNORE).any():  # the prompt alone fills max_length
            stats.skip("prompt_too_long", c.where)
            return None
        ids, labels = ids[:max_length], labels[:max_length]
        stats.modify("truncated")
    if not (labels != IGNORE).any():
        stats.skip("no_trainable_tokens", c.where)
        return None
    return Example(ids, labels, c.category, c.lang)


@dataclass
class Row:
    """One training sequence: one conversation, or several packed back to back."""

    input_ids: np.ndarray
    labels: np.ndarray
    position_ids: np.ndarray  # restart at 0 for every conversation

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_seqs(self) -> int:
        return int((self.position_ids == 0).sum())


def _row(examples: Sequence[Example]) -> Row:
    return Row(
        np.concatenate([e.input_ids for e in examples]),
        np.concatenate([e.labels for e in examples]),
        np.concatenate([np.arange(len(e), dtype=np.int32) for e in examples]),
    )


def single_rows(examples: Sequence[Example]) -> list[Row]:
    return [_row([e]) for e in examples]


def pack_examples(examples: Sequence[Example], max_length: int) -> list[Row]:
    """Best-fit decreasing: longest first, each into the fullest row it still fits in.

    Deterministic for a given input order. Conversations are never split across rows (a split
    conversation would train answers without their prompts), so every example must fit.
    """
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, row index), sorted
    for i in order:
        n = len(examples[i])
        if n > max_length:
            raise ValueError(f"example of {n} tokens does not fit max_length {max_length}")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            cap, r = free.pop(k)
            rows[r].append(i)
            bisect.insort(free, (cap - n, r))
        else:
            rows.append([i])
            bisect.insort(free, (max_length - n, len(rows) - 1))
    return [_row([examples[i] for i in r]) for r in rows]


def collate_rows(rows: Sequence[Row], pad_id: int) -> dict:
    """Right-pad rows to the longest one. Padding gets positions 0.. of its own, i.e. it is one more
    segment of the block-diagonal mask (attends only to itself) with labels -100, so no
    attention_mask is needed and real tokens never see padding."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    labels = np.full((len(rows), width), IGNORE, dtype=np.int64)
    pos = np.tile(np.arange(width, dtype=np.int64), (len(rows), 1))
    for b, r in enumerate(rows):
        n = len(r)
        ids[b, :n], labels[b, :n], pos[b, :n] = r.input_ids, r.labels, r.position_ids
        pos[b, n:] -= n
    # A conversation's first token is never predicted (in a packed row it would be predicted from
    # the previous conversation's last token).
    labels[pos == 0] = IGNORE
    real = sum(len(r) for r in rows)
    return {
        "input_ids": torch.from_numpy(ids),
        "labels": torch.from_numpy(labels),
        "position_ids": torch.from_numpy(pos),
        # Tokens that carry a loss: the loop weights micro-batches by it (token-level mean per step).
        "loss_tokens": int((labels[:, 1:] != IGNORE).sum()),
        "n_tokens": real,
        "pad_tokens": len(rows) * width - real,
    }


def _pad_fraction(lengths: np.ndarray, batches: Iterable[np.ndarray]) -> float:
    real = padded = 0
    for b in batches:
        lens = lengths[b]
        real += int(lens.sum())
        padded += int(lens.max()) * len(lens)
    return 1.0 - real / max(padded, 1)


def padding_report(examples: Sequence[Example], rows: Sequence[Row] | None, batch_size: int,
                   max_length: int, seed: int = 0) -> dict:
    """Share of computed positions that are padding, per batching strategy (epoch-0 order)."""
    lengths = np.asarray([len(e) for e in examples], dtype=np.int64)
    if len(lengths) == 0:
        return {}
    order = np.random.default_rng([seed, 0]).permutation(len(lengths))
    random_batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]  # last one too
    grouped = length_grouped_batches(order, lengths, batch_size, seed=[seed, 0, 1])  # as the loop does
    rep = {
        "examples": len(lengths),
        "tokens": int(lengths.sum()),
        "trained_tokens": int(sum(e.n_trained for e in examples)),
        "pad_to_max_length": round(float(1.0 - lengths.sum() / (len(lengths) * max_length)), 4),
        "random_batches": round(_pad_fraction(lengths, random_batches), 4),
        "length_grouped": round(_pad_fraction(lengths, grouped), 4),
    }
    if rows:
        rl = np.asarray([len(r) for r in rows], dtype=np.int64)
        ro = np.random.default_rng([seed, 0]).permutation(len(rl))
        rep["packed"] = round(_pad_fraction(rl, [ro[i : i + batch_size] for i in range(0, len(ro), batch_size)]), 4)
        rep["packed_rows"] = len(rows)
        rep["conversations_per_row"] = round(len(lengths) / len(rows), 2)
    return rep
