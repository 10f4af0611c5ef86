"""Math answers: the final answer of a completion, compared with the reference as a number.

    final_answer(text)                   the completion's final answer (a `NumberSpan`) or None:
                                           1. the last \\boxed{...}
                                           2. else after the last answer marker ("Answer:", "The answer
                                              is", "答え：", "答えは", "解答：", "正解は"), the first number
                                              (after the last "=" when the marker's line is an equation)
                                           3. else the last number written with digits (kanji numerals
                                              only when the text has no digits: 「一緒に」 is no answer)
    math_answer(completions, answer)     TRL reward function: 1.0 when the final answer equals the
                                         reference exactly (`fractions.Fraction`), else 0.0; None for a
                                         row without a reference (no reward, counted)

Numbers are read by `numbers.parse_number`: full-width and kanji numerals, thousands separators,
"3分の2", "1/2" = "0.5", negative numbers, units ignored. Not string equality: "12" does not match
"120", "1.2" or "12.5", and a completion whose last answer is wrong does not match because the right
number appears earlier in its reasoning.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .numbers import NumberSpan, normalize, number_spans, parse_number
from .text import completion_text

ANSWER_MARKER = re.compile(r"(?:answer|答え|解答|正解)\s*(?:is|は|:|=)\s*", re.IGNORECASE)


def _boxed(t: str) -> str | None:
    """Content of the last \\boxed{...} (balanced braces), else None."""
    start = t.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(t)):
        depth += {"{": 1, "}": -1}.get(t[j], 0)
        if depth == 0:
            return t[i:j]
    return None


def _after_marker(t: str) -> NumberSpan | None:
    marks = list(ANSWER_MARKER.finditer(t))
    for m in reversed(marks):
        rest = t[m.end():]
        for line in rest.splitlines() or [""]:
            if "=" in line:
                line = line[line.rindex("=") + 1:]
            spans = number_spans(line)
            if spans:
                return spans[0]
    return None


def final_answer(text: str) -> NumberSpan | None:
    """The final answer a completion states (see the module docstring), or None."""
    t = normalize(text)
    boxed = _boxed(t)
    if boxed is not None:
        spans = number_spans(boxed)
        return spans[-1] if spans else None
    marked = _after_marker(t)
    if marked is not None:
        return marked
    spans = number_spans(t)
    arabic = [s for s in spans if s.arabic]
    return (arabic or spans or [None])[-1]


def reference_value(answer) -> Fraction:
    """The reference as a number; ValueError when it is not one number."""
    v = parse_number(answer)
    if v is None:
        raise ValueError(f"reference answer {answer!r} is not a number")
    return v


def is_correct(text: str, answer) -> bool:
    got = final_answer(text)
    return got is not None and got.value == reference_value(answer)


def math_answer(completions, answer=None, solution=None, **kwargs) -> list[float | None]:
    """1.0 when a completion's final answer equals the reference number (column `answer`, or
    `solution` as TRL's math datasets name it), else 0.0; None where a row has no reference."""
    refs = answer if answer is not None else solution
    if refs is None:
        return [None] * len(completions)
    return [None if ref is None else float(is_correct(completion_text(c), ref))
            for c, ref in zip(completions, refs, strict=True)]
