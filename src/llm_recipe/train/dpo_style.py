"""The DPO stage of a recipe and its reference demo: teach the SFT model to begin every answer
with "Let me explain. ".

    style_pairs_from_sft   single-turn conversations of the SFT data -> pairs (prompt,
                           chosen = prefix + answer, rejected = answer); the SFT set's own
                           held-out split supplies prompts seen by neither SFT nor DPO
    style_check            greedy answers of a model on prompts: share starting with the prefix
    content_overlap        ROUGE-L of each DPO answer (prefix removed) against the SFT answer:
                           the style changed, the content did not
    stage_dpo              build the data, run DPO, compare SFT and DPO answers, write
                           `dpo/style_report.json` and print both success rates
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from ..config import DPOConfig, GenerateConfig, RecipeConfig, SFTConfig
from ..files import write_json, write_jsonl
from ..preference.records import PreferencePair, SkipLog, prompt_key
from ..preference.text_metrics import rouge_l
from .interrupt import StoppedEarly


@dataclass
class StyleData:
    train: list[PreferencePair]
    eval: list[PreferencePair]
    held_out_prompts: list[list[dict]]  # prompts of neither the SFT nor the DPO training data
    log: SkipLog = field(default_factory=SkipLog)


def _single_turn(messages: list[dict]) -> tuple[list[dict], str] | None:
    """(prompt messages, answer) of a conversation with one user turn (system prompt allowed)."""
    roles = [m["role"] for m in messages]
    if roles not in (["user", "assistant"], ["system", "user", "assistant"]):
        return None
    return messages[:-1], messages[-1]["content"]


def split_pairs_by_prompt(pairs: Sequence[PreferencePair], eval_fraction: float, seed: int):
    cutoff = int(eval_fraction * 2**32)
    train, held = [], []
    for p in pairs:
        (held if xxhash.xxh32_intdigest(prompt_key(p.prompt).encode(), seed=seed) < cutoff else train).append(p)
    return train, held


def style_pairs_from_sft(sft_cfg: SFTConfig, cfg: DPOConfig, seed: int = 0) -> StyleData:
    """The style set, from the SFT data (bundled or files): chosen = prefix + answer, rejected = answer."""
    from .sft import split_by_prompt
    from .sft_bundled import generate_bundled_sft
    from .sft_data import DataStats, conversations_from_records, read_sft_records

    stats = DataStats()
    if sft_cfg.data == "bundled":
        records = generate_bundled_sft(sft_cfg.bundled_examples, seed, style_share=sft_cfg.bundled_style_share)
        convs = conversations_from_records(((f"bundled:{i + 1}", r) for i, r in enumerate(records)), stats,
                                           sft_cfg.system_prompt)
    else:
        convs = read_sft_records(sft_cfg.data, stats, sft_cfg.system_prompt)
    sft_train, sft_held = split_by_prompt(convs, sft_cfg.eval_fraction, seed)  # the split SFT used
    log = SkipLog(skipped=dict(stats.skipped))
    pairs, seen = [], set()
    for c in sft_train:
        one = _single_turn(c.messages)
        if one is None:
            log.skip("multi_turn", c.where)
            continue
        prompt, answer = one
        key = prompt_key(prompt)
        if key in seen:
            log.skip("duplicate_prompt", c.where)
            continue
        seen.add(key)
        if answer.startswith(cfg.style_prefix.strip()):
            log.skip("already_styled", c.where)
            continue
        pairs.append(PreferencePair(prompt, cfg.style_prefix + answer, answer, meta={"source": c.where}))
        if len(pairs) >= cfg.style_pairs:
            break
    log.kept = len(pairs)
    train, evals = split_pairs_by_prompt(pairs, cfg.eval_fraction, seed)
    held: dict[str, list[dict]] = {}  # distinct prompts, in order
    for c in sft_held:
        if (one := _single_turn(c.messages)) is not None and len(held) < cfg.eval_prompts:
            held.setdefault(prompt_key(one[0]), one[0])
    return StyleData(train, evals, list(held.values()), log)


def starts_with_prefix(text: str, prefix: str) -> bool:
    return text.lstrip().startswith(prefix.strip())


def style_check(model, tokenizer, prompts: Sequence[list[dict] | str], prefix: str, max_new_tokens: int = 48,
                seed: int = 0) -> dict:
    """Greedy answers and the share that starts with `prefix`."""
    from ..infer.generate import generate_chat

    gen_cfg = GenerateConfig(temperature=0.0, top_k=None, top_p=None, repetition_penalty=1.0,
                             max_new_tokens=max_new_tokens)
    answers = [g.text for g in generate_chat(model, tokenizer, list(prompts), gen_cfg, seed)]
    hits = [starts_with_prefix(a, prefix) for a in answers]
    return {"rate": sum(hits) / max(len(hits), 1), "n": len(hits), "answers": answers}


def strip_prefix(text: str, prefix: str) -> str:
    t = text.lstrip()
    return t[len(prefix.strip()):].lstrip() if t.startswith(prefix.strip()) else t


def content_overlap(dpo_answers: Sequence[str], sft_answers: Sequence[str], prefix: str) -> list[float]:
    """Per prompt: ROUGE-L F1 of the DPO answer without the prefix against the SFT answer."""
    return [rouge_l(strip_prefix(d, prefix), s) for d, s in zip(dpo_answers, sft_answers, strict=True)]


def _prompt_text(prompt) -> str:
    return prompt if isinstance(prompt, str) else next(m["content"] for m in prompt if m["role"] == "user")


def compare_style(sft_dir: str | os.PathLike, dpo_dir: str | os.PathLike, prompts, prefix: str,
                  max_new_tokens: int, seed: int = 0) -> dict:
    """Success rates of the SFT and DPO models on the same prompts and their content overlap."""
    from ..models.loading import load_causal_lm, load_tokenizer

    res = {}
    for name, d in (("sft", sft_dir), ("dpo", dpo_dir)):
        res[name] = style_check(load_causal_lm(d), load_tokenizer(d), prompts, prefix, max_new_tokens, seed)
    overlap = content_overlap(res["dpo"]["answers"], res["sft"]["answers"], prefix)
    return {
        "prefix": prefix,
        "prompts": len(prompts),
        "sft_rate": res["sft"]["rate"],
        "dpo_rate": res["dpo"]["rate"],
        "overlap_mean": sum(overlap) / max(len(overlap), 1),
        "overlap_ge_0.5": sum(o >= 0.5 for o in overlap) / max(len(overlap), 1),
        "samples": [{"prompt": _prompt_text(p), "sft": s, "dpo": d, "rouge_l": round(o, 3)}
                    for p, s, d, o in zip(prompts, res["sft"]["answers"], res["dpo"]["answers"], overlap, strict=True)],
    }


def _log(msg: str) -> None:
    print(f"[llm-recipe] {msg}", flush=True)


def stage_dpo(cfg: RecipeConfig, sft_model_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """DPO from the SFT model into `out/dpo/`; with the style data, compare SFT and DPO answers on
    held-out prompts (`dpo/style_report.json`) and print both success rates. Skipped when done."""
    from ..preference.converters import read_preference_files
    from .dpo import run_dpo

    dcfg = cfg.dpo or DPOConfig()
    run_dir = Path(out) / "dpo"
    model_dir = run_dir / "model"
    done = (model_dir / "model.safetensors").exists()
    style = dcfg.data == "style"
    if done and (not style or (run_dir / "style_report.json").exists()):
        return model_dir
    init = dcfg.init_from or str(sft_model_dir)
    if style:
        data = style_pairs_from_sft(cfg.sft or SFTConfig(), dcfg, cfg.seed)
        write_jsonl(run_dir / "style_pairs.jsonl", (p.to_json() for p in data.train + data.eval))
        train, evals, log, inputs = data.train, data.eval, data.log, []
    else:
        pairs, log = read_preference_files(dcfg.data)
        if dcfg.eval_data:
            evals, eval_log = read_preference_files(dcfg.eval_data)
            log.merge(eval_log)
            train = pairs
        else:
            train, evals = split_pairs_by_prompt(pairs, dcfg.eval_fraction, cfg.seed)
        inputs = [*dcfg.data, *(dcfg.eval_data or [])]
        _log(f"dpo: read preference data: {log.summary()}")
    if not done:
        res = run_dpo(init=init, train_pairs=train, eval_pairs=evals, cfg=dcfg, output_dir=run_dir, seed=cfg.seed,
                      read_log=log, inputs=inputs, full_config=cfg)
        if res.stopped_early:
            raise StoppedEarly(f"DPO stopped at step {res.steps} (checkpoint saved); run the same command again to resume")
        first, last = res.initial_eval, res.final_eval
        if last:
            _log(f"dpo: eval loss {first.get('eval_loss', float('nan')):.3f} -> {last['eval_loss']:.3f}, "
                 f"reward accuracy {first.get('eval_reward_accuracy', 0):.2f} -> {last['eval_reward_accuracy']:.2f}")
    if style:
        rep = compare_style(init, model_dir, data.held_out_prompts, dcfg.style_prefix, dcfg.max_new_tokens, cfg.seed)
        write_json(run_dir / "style_report.json", rep)
        _log(f"dpo: held-out answers starting with {dcfg.style_prefix.strip()!r}: SFT {rep['sft_rate']:.0%} -> "
             f"DPO {rep['dpo_rate']:.0%} ({rep['prompts']} prompts); content kept (ROUGE-L vs SFT answer) "
             f"{rep['overlap_mean']:.2f}")
    return model_dir
