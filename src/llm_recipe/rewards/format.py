"""Format rewards: does a completion have the shape the task asks for? (1.0 / 0.0, TRL's signature)

    regex_format(completions, pattern=..., full=False)   the pattern is found (`full`: matches the
                                                         whole stripped completion)
    answer_last_line(completions)                        the last non-empty line states the answer:
                                                         "Answer: 12", 「答え：12個」, "The answer is
                                                         -3.", \\boxed{1/2}: a marker (or a box) and one
                                                         number, nothing after it but units/punctuation
    think_answer(completions)                            the reasoning template
                                                         "<think>...</think> <answer>...</answer>"
                                                         (DeepSeek-R1's), each part non-empty, nothing
                                                         outside

These pay for form only: a right number in the wrong place earns nothing here, and a well-formed
wrong answer earns its format reward (the math verifier decides the content).
"""

from __future__ import annotations

import re
from functools import cache

from .math_answer import ANSWER_MARKER
from .numbers import normalize, number_spans
from .text import completion_text

THINK_ANSWER = re.compile(r"<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>", re.DOTALL)
# what may follow the number on the answer line: a unit or counter word and punctuation, no other number
_TAIL = re.compile(r"[^\d=+*/]{0,12}")


@cache
def _compiled(pattern: str, flags: int) -> re.Pattern:
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise ValueError(f"format pattern {pattern!r}: {e}") from None


def regex_format(completions, pattern: str = r"\S", full: bool = False, dotall: bool = True,
                 **kwargs) -> list[float]:
    """1.0 when `pattern` is found in the completion (`full`: matches all of it, stripped)."""
    rx = _compiled(pattern, re.DOTALL if dotall else 0)
    texts = [completion_text(c).strip() for c in completions]
    return [float((rx.fullmatch(t) if full else rx.search(t)) is not None) for t in texts]


def states_answer_line(line: str) -> bool:
    """One answer line: an answer marker (or \\boxed{}) and exactly one number, then at most a unit."""
    t = normalize(line).strip()
    if t.startswith("\\boxed{") or "\\boxed{" in t:
        inner = t[t.index("\\boxed{") + 7 :].rstrip(" .。$")
        return inner.endswith("}") and len(number_spans(inner[:-1])) == 1
    m = ANSWER_MARKER.search(t)
    if m is None:
        return False
    rest = t[m.end():]
    spans = number_spans(rest)
    return (len(spans) == 1 and not rest[: spans[0].start].strip(" *$")
            and _TAIL.fullmatch(rest[spans[0].end:]) is not None)


def answer_last_line(completions, **kwargs) -> list[float]:
    """1.0 when the completion's last non-empty line is its answer line ("Answer: 12", 「答え：12個」)."""
    out = []
    for c in completions:
        lines = [ln for ln in completion_text(c).splitlines() if ln.strip()]
        out.append(float(bool(lines) and states_answer_line(lines[-1])))
    return out


def think_answer(completions, **kwargs) -> list[float]:
    """1.0 for "<think>reasoning</think><answer>answer</answer>" with both parts non-empty and
    nothing before or after."""
    out = []
    for c in completions:
        m = THINK_ANSWER.fullmatch(completion_text(c).strip())
        out.append(float(m is not None and bool(m["think"].strip()) and bool(m["answer"].strip())))
    return out
