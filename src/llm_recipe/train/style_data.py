"""The reference demo's DPO data: the style rule "begin the answer with a prefix" ("Let me
explain. ") applied to SFT data (the bundled set or the user's files).

    style_pairs_from_sft(split, cfg, seed)   single-turn conversations of the SFT training split ->
                                             pairs (chosen = prefix + answer, rejected = answer);
                                             the SFT held-out split supplies prompts seen by
                                             neither SFT nor DPO
    restyle_with_answers(pairs, answers)     the same rule on a model's own answers (on-policy)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..preference.records import PreferencePair, SkipLog, prompt_key, split_by_prompt
from .sft_data import SFTSplit
from .sft_prompts import distinct_single_turns, single_turn, split_log


@dataclass
class StyleData:
    train: list[PreferencePair]
    eval: list[PreferencePair]
    held_out_prompts: list[list[dict]]  # prompts of neither the SFT nor the DPO training data
    log: SkipLog = field(default_factory=SkipLog)
    held_out_keys: list[str | None] = field(default_factory=list)  # the fact a right answer states, if known


def style_pairs_from_sft(split: SFTSplit, cfg, seed: int = 0) -> StyleData:
    """The style set from the SFT split (`cfg`: a `DPOConfig`): chosen = prefix + answer,
    rejected = answer, for up to `cfg.style_pairs` distinct single-turn prompts of the training
    split; `cfg.eval_prompts` held-out prompts from the SFT held-out split."""
    log = split_log(split)
    pairs = []
    for c, prompt, answer in distinct_single_turns(split.train, log):
        if answer.startswith(cfg.style_prefix.strip()):
            log.skip("already_styled", c.where)
            continue
        pairs.append(PreferencePair(prompt, cfg.style_prefix + answer, answer, meta={"source": c.where}))
        if len(pairs) >= cfg.style_pairs:
            break
    log.kept = len(pairs)
    train, evals = split_by_prompt(pairs, cfg.eval_fraction, seed)
    held: dict[str, tuple[list[dict], str | None]] = {}  # distinct prompts, in order, with their answer key
    for c in split.held_out:
        if (one := single_turn(c.messages)) is not None and len(held) < cfg.eval_prompts:
            held.setdefault(prompt_key(one[0]), (one[0], c.answer_key))
    return StyleData(train, evals, [p for p, _ in held.values()], log, [k for _, k in held.values()])


def restyle_with_answers(pairs: list[PreferencePair], answers: list[str], prefix: str,
                         log: SkipLog) -> list[PreferencePair]:
    """The same rule on a model's own answers to the pairs' prompts: chosen = prefix + answer,
    rejected = answer. Preferences over what the policy already says move its style, not its
    content (the on-policy variant of the demo). Empty and already-styled answers are skipped."""
    out = []
    for p, a in zip(pairs, answers, strict=True):
        a = a.strip()
        if not a:
            log.skip("empty_model_answer", str(p.meta.get("source", "?")))
        elif a.startswith(prefix.strip()):
            log.skip("already_styled", str(p.meta.get("source", "?")))
        else:
            out.append(PreferencePair(p.prompt, prefix + a, a, meta={**p.meta, "answer": "model"}))
    return out
