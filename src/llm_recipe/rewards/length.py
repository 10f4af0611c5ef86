"""Length shaping (DAPO, Yu et al. 2025, section 3.4).

    overlong_penalty(completions, completion_ids, max_tokens, cache_tokens)
        DAPO's soft overlong punishment, as TRL's `get_soft_overlong_punishment`: 0 up to
        max_tokens - cache_tokens, then falling linearly to -1 at max_tokens, -1 beyond. Lengths are
        token counts (`completion_ids`, which the RL loop passes); without token ids (labelling
        text files) they are characters.

Masking truncated completions from the loss (DAPO's overlong filtering) is the RL loop's
`mask_truncated` option: it needs to know which completions the length limit cut, which only
the rollout knows.
"""

from __future__ import annotations

from .text import completion_text


def soft_overlong(length: int, max_tokens: int, cache_tokens: int) -> float:
    start = max_tokens - cache_tokens
    if length <= start:
        return 0.0
    if length <= max_tokens:
        return (start - length) / cache_tokens
    return -1.0


def overlong_penalty(completions, completion_ids=None, max_tokens: int = 512, cache_tokens: int = 128,
                     **kwargs) -> list[float]:
    if not 0 < cache_tokens <= max_tokens:
        raise ValueError(f"overlong_penalty: need 0 < cache_tokens ({cache_tokens}) <= max_tokens ({max_tokens})")
    lengths = ([len(ids) for ids in completion_ids] if completion_ids is not None
               else [len(completion_text(c)) for c in completions])
    return [soft_overlong(n, max_tokens, cache_tokens) for n in lengths]
