"""The recipe's reference demo: a learnable style rule, "Let me explain. " at the start of answers.

    style_preference_pairs   chosen = STYLE_PREFIX + answer, rejected = answer, for single-turn
                             prompts of the bundled SFT generator (Japanese and English), from a
                             different seed than the SFT set (not its training prompts): the
                             reward model's data
    fluency_pairs            answer over a garbled copy of it (so a policy optimised against the
                             reward model cannot win by drifting into nonsense)
    style_pairs_from_sft     the same rule on the SFT data itself (DPO's data): single-turn
                             conversations of the SFT training split -> pairs; the SFT held-out
                             split supplies prompts seen by neither SFT nor DPO
    single_turn_examples     (prompt, answer) pairs of the generator (RL and candidate prompts)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..config import DPOConfig, SFTConfig
from ..preference.records import PreferencePair, SkipLog, prompt_key, split_by_prompt
from ..train.sft_data import (
    DataStats,
    conversations_from_records,
    read_sft_records,
    split_conversations,
)
from .sft_set import generate_bundled_sft, sft_records

STYLE_PREFIX = "Let me explain. "


def single_turn_examples(n: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, answer) pairs from the bundled SFT generator, single-turn, no system prompt,
    distinct prompts (first occurrence kept)."""
    out: dict[str, str] = {}
    for rec in generate_bundled_sft(n, seed=seed, system_prompt_rate=0.0):
        if "messages" in rec:
            msgs = rec["messages"]
            if len(msgs) != 2 or msgs[0]["role"] != "user":
                continue
            prompt, answer = msgs[0]["content"], msgs[1]["content"]
        else:  # Alpaca shape: the input is part of the request
            prompt = rec["instruction"] + (f"\n\n{rec['input']}" if rec.get("input") else "")
            answer = rec["output"]
        out.setdefault(prompt, answer)
    return list(out.items())


def style_preference_pairs(n: int, seed: int = 0, prefix: str = STYLE_PREFIX) -> list[PreferencePair]:
    """Up to `n` pairs (distinct prompts) preferring answers that start with `prefix`."""
    # The generator repeats prompts; draw extra records so n distinct prompts are usually there.
    examples = single_turn_examples(4 * n, seed=10_000 + seed)[:n]
    return [PreferencePair(p, prefix + a, a, meta={"source": "style_synthetic"}) for p, a in examples]


def corrupt(text: str, rng: random.Random, other: str) -> str:
    """A garbled version of `text` of the kinds a drifting policy produces: characters shuffled
    within the answer, an answer spliced with another one (often the other language), or stray
    characters inserted."""
    kind = rng.randrange(3)
    if kind == 0:
        chars = list(text)
        rng.shuffle(chars)
        return "".join(chars)
    if kind == 1:
        return text[: max(len(text) // 2, 1)] + other[len(other) // 2 :]
    out = []
    for ch in text:
        out.append(ch)
        if rng.random() < 0.3:
            out.append(rng.choice(other or text))
    return "".join(out)


def fluency_pairs(n: int, seed: int = 0, prefix: str = STYLE_PREFIX) -> list[PreferencePair]:
    """`n` pairs preferring an answer over a corrupted copy of it, half of them both carrying the
    style prefix. Mixed into a style reward model's data, they teach it that garbled text is bad,
    so a policy optimised against it cannot gain reward by drifting into nonsense while the
    prefix still decides the style pairs."""
    rng = random.Random(f"fluency-{seed}")
    examples = single_turn_examples(4 * n, seed=30_000 + seed)[:n]
    pairs = []
    for i, (p, a) in enumerate(examples):
        bad = corrupt(a, rng, examples[rng.randrange(len(examples))][1])
        if bad == a:
            continue
        styled = prefix if i % 2 else ""
        pairs.append(PreferencePair(p, styled + a, styled + bad, meta={"source": "fluency_synthetic"}))
    return pairs


@dataclass
class StyleData:
    train: list[PreferencePair]
    eval: list[PreferencePair]
    held_out_prompts: list[list[dict]]  # prompts of neither the SFT nor the DPO training data
    log: SkipLog = field(default_factory=SkipLog)
    held_out_keys: list[str | None] = field(default_factory=list)  # the fact a right answer states, if known


def _single_turn(messages: list[dict]) -> tuple[list[dict], str] | None:
    """(prompt messages, answer) of a conversation with one user turn (system prompt allowed)."""
    roles = [m["role"] for m in messages]
    if roles not in (["user", "assistant"], ["system", "user", "assistant"]):
        return None
    return messages[:-1], messages[-1]["content"]


def _sft_split(sft_cfg: SFTConfig, seed: int):
    """(train, held-out) conversations exactly as SFT split them, and the read's skips."""
    stats = DataStats()
    records = sft_records(sft_cfg, seed)
    if records is not None:
        convs = conversations_from_records(records, stats, sft_cfg.system_prompt)
    else:
        convs = read_sft_records(sft_cfg.data, stats, sft_cfg.system_prompt)
    sft_train, sft_held = split_conversations(convs, sft_cfg.eval_fraction, seed)
    return sft_train, sft_held, SkipLog(skipped=dict(stats.skipped))


def sft_train_prompts(sft_cfg: SFTConfig, seed: int = 0) -> tuple[list[dict], SkipLog]:
    """Distinct single-turn prompts of the SFT training split, as prompt items ({"prompt", "where"}):
    prompts to sample from that the eval stage's held-out prompts never include."""
    sft_train, _, log = _sft_split(sft_cfg, seed)
    items = [{"prompt": prompt, "where": c.where} for c, prompt, _ in _distinct_single_turns(sft_train, log)]
    log.kept = len(items)
    return items, log


def _distinct_single_turns(convs, log: SkipLog):
    """(conversation, prompt, answer) of each single-turn conversation whose prompt is new; the
    others are counted in `log`."""
    seen = set()
    for c in convs:
        one = _single_turn(c.messages)
        if one is None:
            log.skip("multi_turn", c.where)
        elif prompt_key(one[0]) in seen:
            log.skip("duplicate_prompt", c.where)
        else:
            seen.add(prompt_key(one[0]))
            yield c, one[0], one[1]


def style_pairs_from_sft(sft_cfg: SFTConfig, cfg: DPOConfig, seed: int = 0) -> StyleData:
    """The style set, from the SFT data (bundled or files): chosen = prefix + answer, rejected = answer."""
    sft_train, sft_held, log = _sft_split(sft_cfg, seed)
    pairs = []
    for c, prompt, answer in _distinct_single_turns(sft_train, log):
        if answer.startswith(cfg.style_prefix.strip()):
            log.skip("already_styled", c.where)
            continue
        pairs.append(PreferencePair(prompt, cfg.style_prefix + answer, answer, meta={"source": c.where}))
        if len(pairs) >= cfg.style_pairs:
            break
    log.kept = len(pairs)
    train, evals = split_by_prompt(pairs, cfg.eval_fraction, seed)
    held: dict[str, tuple[list[dict], str | None]] = {}  # distinct prompts, in order, with their answer key
    for c in sft_held:
        if (one := _single_turn(c.messages)) is not None and len(held) < cfg.eval_prompts:
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
