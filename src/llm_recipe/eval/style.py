"""Style success and content kept: the measure of the "Let me explain." demo (DPO, RL stages).

    style_check(model, tok, prompts, prefix)    greedy answers and the share starting with `prefix`
    content_overlap(dpo, sft, prefix)           ROUGE-L of each answer (prefix removed) against the
                                                reference model's answer: the style changed, the
                                                content did not
    compare_style(sft_dir, dpo_dir, ...)        both models on the same prompts, side by side
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..config import ComputeConfig, SamplingConfig
from ..infer.generate import generate_chat
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..preference.records import user_text
from ..preference.text_metrics import rouge_l


def starts_with_prefix(text: str, prefix: str) -> bool:
    return text.lstrip().startswith(prefix.strip())


def style_check(model, tokenizer, prompts: Sequence[list[dict] | str], prefix: str, max_new_tokens: int = 48,
                seed: int = 0) -> dict:
    """Greedy answers and the share that starts with `prefix`."""
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
    answers = [g.text for g in generate_chat(model, tokenizer, list(prompts), greedy, seed)]
    hits = [starts_with_prefix(a, prefix) for a in answers]
    return {"rate": sum(hits) / max(len(hits), 1), "n": len(hits), "answers": answers}


def strip_prefix(text: str, prefix: str) -> str:
    t = text.lstrip()
    return t[len(prefix.strip()):].lstrip() if t.startswith(prefix.strip()) else t


def content_overlap(dpo_answers: Sequence[str], sft_answers: Sequence[str], prefix: str) -> list[float]:
    """Per prompt: ROUGE-L F1 of the DPO answer without the prefix against the SFT answer."""
    return [rouge_l(strip_prefix(d, prefix), s) for d, s in zip(dpo_answers, sft_answers, strict=True)]


def states_fact(answer: str, key: str) -> bool:
    """The answer states the fact (`key`, e.g. the capital asked for): case-insensitive substring."""
    return key.casefold() in answer.casefold()


def compare_style(sft_dir: str | os.PathLike, dpo_dir: str | os.PathLike, prompts, prefix: str,
                  max_new_tokens: int, seed: int = 0, compute: ComputeConfig | None = None,
                  answer_keys: Sequence[str | None] | None = None) -> dict:
    """Success rates of the SFT and DPO models on the same prompts and their content overlap; with
    `answer_keys` (the fact a right answer states, None where the prompt has none), whether the DPO
    model still answers correctly where the SFT model did."""
    compute = compute or ComputeConfig()
    res = {}
    for name, d in (("sft", sft_dir), ("dpo", dpo_dir)):
        model = load_model(d, compute)
        with autocast(compute, model.device):
            res[name] = style_check(model, load_tokenizer(d), prompts, prefix, max_new_tokens, seed)
    overlap = content_overlap(res["dpo"]["answers"], res["sft"]["answers"], prefix)
    correct: dict[str, list[bool]] = {}
    keyed = [i for i, k in enumerate(answer_keys or []) if k]
    for name in ("sft", "dpo"):
        correct[name] = [states_fact(res[name]["answers"][i], answer_keys[i]) for i in keyed]
    kept = [d for s, d in zip(correct["sft"], correct["dpo"], strict=True) if s]
    return {
        "prefix": prefix,
        "prompts": len(prompts),
        "sft_rate": res["sft"]["rate"],
        "dpo_rate": res["dpo"]["rate"],
        "overlap_mean": sum(overlap) / max(len(overlap), 1),
        "overlap_ge_0.5": sum(o >= 0.5 for o in overlap) / max(len(overlap), 1),
        **({"fact_prompts": len(keyed), "correct_sft": sum(correct["sft"]) / len(keyed),
            "correct_dpo": sum(correct["dpo"]) / len(keyed),
            "still_correct": sum(kept) / len(kept) if kept else None} if keyed else {}),
        "samples": [{"prompt": user_text(p), "sft": s, "dpo": d, "rouge_l": round(o, 3)}
                    for p, s, d, o in zip(prompts, res["sft"]["answers"], res["dpo"]["answers"], overlap, strict=True)],
    }
