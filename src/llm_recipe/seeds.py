"""Named seed streams: every random choice of a run draws from a stream derived from the run's seed.

One table (`STREAMS`) says which streams exist, what draws from each and how its seed is derived
from the run's seed (`--seed`, or a stage's own `seed:` where it has one). Two choices that must not
be correlated use two streams (the streams one stage draws from together never coincide:
tests/test_stage_contract.py); two that must see the same items use one stream on purpose (the RL
prompts and the bundled candidate prompts are the same style-set prompts). Streams of different
stages may happen to share a value: they seed different generators over different items. The derivations keep the
values the project has always used, so a run is reproducible across versions; a new stream should
use `derive` (numpy's SeedSequence), which gives independent seeds without hand-picked offsets.

    seed_for("style_pairs", 0)          -> the seed of the reward model's style pairs
    seed_for("rl_rollouts", 0, it, world, rank)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def derive(seed: int, *index: int) -> int:
    """An independent seed for (seed, index...), from numpy's SeedSequence (no correlated offsets)."""
    return int(np.random.SeedSequence([seed, *index]).generate_state(1)[0])


# name -> (derivation from the run's seed and the stream's indices, what draws from it)
STREAMS: dict[str, tuple[Callable[..., int], str]] = {
    "style_pairs": (lambda s: 10_000 + s,
                    "the reward model's generated style pairs (prompts drawn from the bundled SFT generator)"),
    "bundled_prompts": (lambda s: 20_000 + s,
                        "single-turn style-set prompts: RL's prompts and `prefs generate`'s bundled ones"),
    "fluency_pairs": (lambda s: 30_000 + s, "the reward model's answer-vs-garbled-answer pairs"),
    "mixing_plan": (lambda s: s, "curation: which documents the mixture takes from each source, epoch by epoch"),
    "mixing_order": (lambda s: s + 1, "curation: the output file each mixed document goes to (shuffling)"),
    "quality_annotation": (lambda s: derive(s), "curation: the documents `curate annotate-quality` has the judge "
                           "score, then its held-out split"),
    "constitutional_principles": (lambda s: s, "constitutional AI: the principle drawn per prompt and round"),
    "constitutional_judge": (lambda s: s + 1, "constitutional AI: the principle the AI-feedback judge is asked"),
    "candidate_sampling": (lambda s, j: derive(s, j), "preference candidates: sample j of every prompt"),
    "online_dpo_sampling": (lambda s, r: derive(s, 1000 + r), "online DPO: round r's candidate sampling"),
    "online_dpo_round": (lambda s, r: s + r, "online DPO: round r's train/eval split of its pairs and its DPO run"),
    "rl_heldout": (lambda s: s + 7919, "RL: sampling of the held-out evaluation before and after training"),
    "rl_minibatches": (lambda s, it: s * 7 + it, "RL: the minibatch order of iteration it"),
    "rl_rollouts": (lambda s, it, world, rank: (s * 1_000_003 + it) * world + rank,
                    "RL: rollouts of iteration it on process rank of world"),
}


def seed_for(stream: str, seed: int, *index: int) -> int:
    """The seed of `stream` for the run's `seed` (and the stream's indices: round, iteration...)."""
    try:
        derivation, _ = STREAMS[stream]
    except KeyError:
        raise KeyError(f"unknown seed stream '{stream}' (known: {', '.join(STREAMS)})") from None
    return derivation(seed, *index)
