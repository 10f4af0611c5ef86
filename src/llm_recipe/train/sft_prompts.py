"""Prompts taken from the SFT split (`sft_data.split_sft_data`): what later stages sample from or
measure on, so that no stage's held-out prompts were ever trained on.

    single_turn(messages)          (prompt messages, answer) of a one-user-turn conversation
    distinct_single_turns(convs)   (conversation, prompt, answer) for each new single-turn prompt
    sft_train_prompts(split)       the training split's distinct single-turn prompts, as prompt
                                   items: online DPO samples these (never the eval stage's held-out ones)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..preference.records import SkipLog, prompt_key
from .sft_data import Conversation, SFTSplit


def single_turn(messages: list[dict]) -> tuple[list[dict], str] | None:
    """(prompt messages, answer) of a conversation with one user turn (system prompt allowed)."""
    roles = [m["role"] for m in messages]
    if roles not in (["user", "assistant"], ["system", "user", "assistant"]):
        return None
    return messages[:-1], messages[-1]["content"]


def distinct_single_turns(convs: Iterable[Conversation], log: SkipLog) -> Iterator[tuple[Conversation, list[dict], str]]:
    """(conversation, prompt, answer) of each single-turn conversation whose prompt is new; the
    others are counted in `log`."""
    seen = set()
    for c in convs:
        one = single_turn(c.messages)
        if one is None:
            log.skip("multi_turn", c.where)
        elif prompt_key(one[0]) in seen:
            log.skip("duplicate_prompt", c.where)
        else:
            seen.add(prompt_key(one[0]))
            yield c, one[0], one[1]


def split_log(split: SFTSplit) -> SkipLog:
    """The read's skips of the split, as a `SkipLog` (what a stage built on it reports)."""
    return SkipLog(skipped=dict(split.stats.skipped))


def sft_train_prompts(split: SFTSplit) -> tuple[list[dict], SkipLog]:
    """Distinct single-turn prompts of the SFT training split, as prompt items ({"prompt", "where"}):
    prompts to sample from that the eval stage's held-out prompts never include."""
    log = split_log(split)
    items = [{"prompt": prompt, "where": c.where} for c, prompt, _ in distinct_single_turns(split.train, log)]
    log.kept = len(items)
    return items, log
