"""Stage 3: supervised fine-tuning on the shared training loop.

records -> conversations (bad ones counted) -> train/eval split by prompt hash -> render with the
chat format, tokenize once with offsets, mask non-assistant tokens -> pack (or length-group)
-> shared `Trainer` with `SFTObjective` -> HF model dir whose tokenizer carries the chat format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import xxhash

from ..config import GenerateConfig, SFTConfig
from ..files import write_json, write_jsonl
from ..models.finetuning import merge_lora, with_lora
from ..models.loading import load_causal_lm
from ..models.presets import count_parameters
from ..provenance import write_run_manifest
from ..tokenizer.chat_formats import apply_chat_format, resolve_chat_format, stop_token_ids
from .interrupt import StoppedEarly
from .loop import StepCallback, Trainer
from .sft_bundled import generate_bundled_sft
from .sft_coverage import coverage_report
from .sft_data import (
    IGNORE,
    Conversation,
    DataStats,
    Example,
    collate_rows,
    conversations_from_records,
    has_japanese,
    pack_examples,
    padding_report,
    read_sft_records,
    single_rows,
    tokenize_examples,
)


def _supports_mask_logits_to_keep() -> bool:
    # transformers >= 5 slices hidden states by a boolean (batch, seq) mask before the LM head.
    try:
        from transformers.modeling_utils import slice_logits_to_keep  # noqa: F401
    except ImportError:
        return False
    return True


class SFTObjective:
    """Mean next-token cross-entropy over assistant tokens only.

    The LM head runs only on positions whose next token carries a loss (`logits_to_keep` as a
    boolean mask), inside the model's own forward (so DDP/FSDP/peft wrappers see a normal call):
    prompt and padding positions cost no vocabulary projection.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id
        self.compact = _supports_mask_logits_to_keep()

    def collate(self, rows) -> dict:
        return collate_rows(rows, self.pad_id)

    def loss(self, model, batch):
        labels = batch["labels"]
        target_mask = labels[:, 1:] != IGNORE
        target = labels[:, 1:][target_mask]
        kw = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
        if self.compact:
            keep = torch.zeros_like(labels, dtype=torch.bool)
            keep[:, :-1] = target_mask
            logits = model(**kw, logits_to_keep=keep).logits
        else:
            logits = model(**kw).logits[:, :-1][target_mask]
        if target.numel() == 0:  # a batch without answers: a differentiable zero, not NaN
            return logits.sum() * 0.0, {"n_tokens": batch["n_tokens"], "token_acc": 0.0}
        loss = F.cross_entropy(logits.float(), target)
        acc = (logits.detach().argmax(-1) == target).float().mean().item()
        return loss, {"n_tokens": batch["n_tokens"], "token_acc": acc,
                      "pad_fraction": batch["pad_tokens"] / max(labels.numel(), 1)}


def split_by_prompt(convs: Sequence[Conversation], eval_fraction: float, seed: int):
    """Held-out split by a hash of the first user message: identical prompts never straddle it."""
    cutoff = int(eval_fraction * 2**32)
    train, held = [], []
    for c in convs:
        first = next(m["content"] for m in c.messages if m["role"] == "user")
        (held if xxhash.xxh32_intdigest(first.encode(), seed=seed) < cutoff else train).append(c)
    return train, held


@dataclass
class SFTData:
    train: list[Example]
    eval: list[Example]
    held_out: list[Conversation]  # held-out conversations (for generation checks)
    stats: DataStats
    inferred_categories: int


def load_sft_data(cfg: SFTConfig, tokenizer, fmt, seed: int = 0, out_dir: Path | None = None) -> SFTData:
    stats = DataStats()
    if cfg.data == "bundled":
        records = generate_bundled_sft(cfg.bundled_examples, seed, style_share=cfg.bundled_style_share)
        if out_dir is not None:  # what was trained on, for inspection
            write_jsonl(out_dir / "bundled_sft.jsonl", records)
        convs = conversations_from_records(((f"bundled:{i + 1}", r) for i, r in enumerate(records)), stats,
                                           cfg.system_prompt)
    else:
        convs = read_sft_records(cfg.data, stats, cfg.system_prompt)
    train_c, held = split_by_prompt(convs, cfg.eval_fraction, seed)
    kw = dict(max_length=cfg.max_length, overlong=cfg.overlong, train_on=cfg.train_on)
    train = tokenize_examples(train_c, tokenizer, fmt, stats=stats, **kw)
    held_stats = DataStats()
    evals = tokenize_examples(held, tokenizer, fmt, stats=held_stats, **kw)
    for k, v in held_stats.skipped.items():  # one account of every record, whichever side it fell on
        stats.skipped[k] = stats.skipped.get(k, 0) + v
    for k, v in held_stats.modified.items():
        stats.modify(k, v)
    stats.examples += held_stats.examples[: max(0, 20 - len(stats.examples))]
    stats.kept = len(train) + len(evals)
    return SFTData(train, evals, held, stats, sum(c.category_inferred for c in convs))


def _rows(examples, cfg: SFTConfig):
    return pack_examples(examples, cfg.max_length) if cfg.packing else single_rows(examples)


@dataclass
class SFTResult:
    model_dir: Path
    initial_eval_loss: float | None
    final_eval_loss: float | None
    steps: int
    stopped_early: bool
    report: dict


def run_sft(
    *,
    init: str | os.PathLike | torch.nn.Module,
    tokenizer,
    cfg: SFTConfig,
    output_dir: str | os.PathLike,
    seed: int = 0,
    resume: bool = True,
    callbacks: Sequence[StepCallback] = (),
    full_config=None,
) -> SFTResult:
    """Fine-tune `init` (model dir / hub id / module) and save `output_dir/model`, whose tokenizer
    carries the chat format as `chat_template` and whose generation config stops at end of turn."""
    out = Path(output_dir)
    if cfg.lora is not None and cfg.save_every:
        raise ValueError("sft.save_every with LoRA: checkpoints hold full weights, not adapters; unset one of them")
    fmt = resolve_chat_format(tokenizer, cfg.format)  # warns if the model was trained on another format
    model = init if isinstance(init, torch.nn.Module) else load_causal_lm(init)
    if apply_chat_format(tokenizer, fmt):
        model.resize_token_embeddings(len(tokenizer))
    data = load_sft_data(cfg, tokenizer, fmt, seed, out)
    if not data.train:
        raise ValueError(f"no usable SFT examples (skipped: {data.stats.skipped})")
    train_rows, eval_rows = _rows(data.train, cfg), _rows(data.eval, cfg)
    if cfg.lora is not None:
        model = with_lora(model, cfg.lora)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    lengths = None if cfg.packing or not cfg.group_by_length else [len(r) for r in train_rows]
    trainer = Trainer(model, SFTObjective(pad_id), train_rows, cfg, out, eval_data=eval_rows or None,
                      seed=seed, callbacks=callbacks, group_by_length=lengths)
    resumed = resume and trainer.resume("latest")
    report = {
        "format": fmt.name,
        "data": asdict(data.stats),
        "coverage": coverage_report(data.train, cfg.skew_ratio, data.inferred_categories),
        "padding": padding_report(data.train, train_rows if cfg.packing else None, cfg.batch_size,
                                  cfg.max_length, seed),
        "train_examples": len(data.train),
        "eval_examples": len(data.eval),
        "train_rows": len(train_rows),
        "dropped_rows_per_epoch": trainer.dropped_per_epoch,
        "parameters": count_parameters(model),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "resumed_from_step": trainer.state.step if resumed else None,
    }
    if trainer.is_main:
        write_json(out / "data_report.json", report)
        write_run_manifest(out, stage="sft", config=full_config or cfg,
                           inputs=[] if cfg.data == "bundled" else cfg.data, extra={"data_report": report})
    result = trainer.fit()
    model_dir = out / "model"
    if trainer.is_main and not result["stopped_early"]:
        final = merge_lora(trainer.unwrapped_model(), out)
        # Generation (ours or anyone's `model.generate`) stops at the end of an assistant turn.
        final.generation_config.eos_token_id = stop_token_ids(tokenizer, fmt)
        final.generation_config.pad_token_id = pad_id
        final.save_pretrained(model_dir, safe_serialization=True)
        tokenizer.save_pretrained(model_dir)
        from ..report.plots import plot_metrics

        plot_metrics(out / "metrics.jsonl", out / "loss.png", title="SFT loss (assistant tokens)")
    hist = result["history"]
    return SFTResult(
        model_dir=model_dir,
        initial_eval_loss=next((h["eval_loss"] for h in hist if h["step"] == 0), None),
        final_eval_loss=hist[-1]["eval_loss"] if hist else None,
        steps=result["step"],
        stopped_early=result["stopped_early"],
        report=report,
    )


def _prompt_text(prompt: str | list[dict]) -> str:
    if isinstance(prompt, str):
        return prompt
    return next(m["content"] for m in prompt if m["role"] == "user")


def follows_template(prompt: str | list[dict], gen, expect_lang: str | None = None) -> bool:
    """The answer ended on its own (eos / end of turn, not the length limit), is non-empty, and is
    in the expected language (default: the prompt's)."""
    lang = expect_lang or ("ja" if has_japanese(_prompt_text(prompt)) else "en")
    return (gen.finish_reason == "stop_token" and bool(gen.text.strip())
            and ("ja" if has_japanese(gen.text) else "en") == lang)


def template_following(model, tokenizer, prompts: Sequence[str | list[dict]], cfg: GenerateConfig,
                       seed: int = 0, chat_format: str | None = None,
                       expect_langs: Sequence[str | None] | None = None) -> dict:
    """Share of prompts answered in the format: stopped by itself, in the right language."""
    from ..infer.generate import generate_chat

    gens = generate_chat(model, tokenizer, list(prompts), cfg, seed, chat_format=chat_format)
    langs = list(expect_langs) if expect_langs is not None else [None] * len(prompts)
    ok = [follows_template(p, g, lang) for p, g, lang in zip(prompts, gens, langs, strict=True)]
    n = max(len(ok), 1)
    return {"rate": sum(ok) / n, "n": len(ok),
            "ended_by_itself": sum(g.finish_reason == "stop_token" for g in gens) / n,
            "samples": [{"prompt": _prompt_text(p), "answer": g.text, "finish": g.finish_reason, "ok": o}
                        for p, g, o in zip(prompts, gens, ok, strict=True)]}


def held_out_prompts(held: Sequence[Conversation], n: int = 40,
                     exclude: Sequence[str] = ("translation",)) -> tuple[list[list[dict]], list[str]]:
    """Up to `n` single-turn held-out conversations without their answer, and the language the
    answer should be in (the prompt's). Translation is left out by default: its answer is in the
    other language by design, which measures a skill, not following the template."""
    prompts, langs = [], []
    for c in held:
        if sum(m["role"] == "user" for m in c.messages) != 1 or c.category in exclude:
            continue
        prompts.append([m for m in c.messages if m["role"] != "assistant"])
        langs.append("ja" if has_japanese(_prompt_text(c.messages)) else "en")
        if len(prompts) >= n:
            break
    return prompts, langs


def dedupe_prompts(held: Sequence[Conversation]) -> list[Conversation]:
    seen, out = set(), []
    for c in held:
        key = repr([m for m in c.messages if m["role"] != "assistant"])
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def sft_stage(cfg, base_model_dir: str | os.PathLike, out_dir: str | os.PathLike, log=print) -> Path:
    """The recipe's SFT stage: fine-tune (skipped when already done), then sample the demo prompts
    with the base and the SFT model, and measure template following on held-out prompts."""
    from ..infer.generate import generate_chat
    from ..models.loading import load_tokenizer

    out = Path(out_dir)
    sft_cfg: SFTConfig = cfg.sft
    model_dir = out / "model"
    if not (model_dir / "model.safetensors").exists():
        res = run_sft(init=base_model_dir, tokenizer=load_tokenizer(base_model_dir), cfg=sft_cfg, output_dir=out,
                      seed=cfg.seed, full_config=cfg)
        if res.stopped_early:
            raise StoppedEarly(f"SFT stopped at step {res.steps} (checkpoint saved); run the same command again to resume")
        log(f"sft: eval loss {res.initial_eval_loss:.3f} -> {res.final_eval_loss:.3f} in {res.steps} steps")
    if (out / "samples.jsonl").exists():
        return model_dir
    base, base_tok = load_causal_lm(base_model_dir), load_tokenizer(base_model_dir)
    tuned, tuned_tok = load_causal_lm(model_dir), load_tokenizer(model_dir)
    fmt = resolve_chat_format(tuned_tok).name
    # Same prompts, same format, same sampling settings and seed: only the weights differ.
    prompts = list(sft_cfg.demo_prompts)
    before = generate_chat(base, base_tok, prompts, cfg.generate, cfg.seed, chat_format=fmt)
    after = generate_chat(tuned, tuned_tok, prompts, cfg.generate, cfg.seed)
    write_jsonl(out / "samples.jsonl", [{"prompt": p, "before": b.text, "after": a.text, "after_finish": a.finish_reason}
                                        for p, b, a in zip(prompts, before, after, strict=True)])
    for p, b, a in zip(prompts, before, after, strict=True):
        log(f"sft sample: {p!r}\n    before: {b.text!r}\n    after:  {a.text!r}")
    data = load_sft_data(sft_cfg, tuned_tok, resolve_chat_format(tuned_tok), cfg.seed)
    held, langs = held_out_prompts(dedupe_prompts(data.held_out), 40)
    # A measurement, not a demo: greedy, with the default repetition penalty against greedy loops.
    greedy = GenerateConfig(prompts=[], temperature=0.0, max_new_tokens=128, repetition_penalty=1.1)
    rep_before = template_following(base, base_tok, held, greedy, chat_format=fmt, expect_langs=langs)
    rep_after = template_following(tuned, tuned_tok, held, greedy, expect_langs=langs)
    write_json(out / "template_following.json", {"before": rep_before, "after": rep_after})
    log(f"sft: template following on {rep_after['n']} held-out prompts (stops by itself, right language): "
        f"{rep_before['rate']:.0%} before -> {rep_after['rate']:.0%} after")
    return model_dir


def sft_stats(cfg: SFTConfig, tokenizer, seed: int = 0) -> dict:
    """What `llm-recipe sft-stats` prints: coverage, skipped/modified records, padding waste."""
    fmt = resolve_chat_format(tokenizer, cfg.format)
    data = load_sft_data(cfg, tokenizer, fmt, seed)
    examples = data.train + data.eval
    rows = pack_examples(examples, cfg.max_length) if cfg.packing else None
    return {"format": fmt.name, "data": asdict(data.stats),
            "coverage": coverage_report(examples, cfg.skew_ratio, data.inferred_categories),
            "padding": padding_report(examples, rows, cfg.batch_size, cfg.max_length, seed)}
