"""The recipe's reference demo: a learnable style rule, "Let me explain. " at the start of answers.

    style_preference_pairs   chosen = STYLE_PREFIX + answer, rejected = answer, for single-turn
                             prompts of the bundled SFT generator (Japanese and English), from a
                             different seed than the SFT set (not its training prompts): the
                             reward model's data
    fluency_pairs            answer over a garbled copy of it (so a policy optimised against the
                             reward model cannot win by drifting into nonsense)
    single_turn_examples     (prompt, answer) pairs of the generator (RL and candidate prompts)
The same rule applied to the SFT data itself (DPO's data) is a component: `train.style_data`.
"""

from __future__ import annotations

import random

from ..preference.records import PreferencePair
from ..seeds import seed_for
from .sft_set import generate_bundled_sft

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
    examples = single_turn_examples(4 * n, seed=seed_for("style_pairs", seed))[:n]
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
    examples = single_turn_examples(4 * n, seed=seed_for("fluency_pairs", seed))[:n]
    pairs = []
    for i, (p, a) in enumerate(examples):
        bad = corrupt(a, rng, examples[rng.randrange(len(examples))][1])
        if bad == a:
            continue
        styled = prefix if i % 2 else ""
        pairs.append(PreferencePair(p, styled + a, styled + bad, meta={"source": "fluency_synthetic"}))
    return pairs
