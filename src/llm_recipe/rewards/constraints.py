"""Instruction constraints in the style of IFEval, each a check of a completion (1.0 / 0.0).

One check per kind, a table from kind to check (`CHECKS`):

    word_count        min / max words (words: runs of letters and digits; Japanese, written without
                      spaces, counts a run between punctuation as one word: use char_count there)
    char_count        min / max characters, whitespace not counted
    keywords          every one of `keywords` appears (case-insensitive); `forbidden`: none appears
    no_commas         no "," and no Japanese comma "、" / "，"
    json              the completion (or its ```json fenced block) parses as JSON
    language          written in `lang` ("ja" / "en"; `text.text_language`)
    ends_with         the completion, stripped, ends with `phrase`

    instruction_following(completions, constraints=...)   TRL reward function over a dataset column
        `constraints`: per row a list of {"type": kind, ...arguments}; the reward is the share of
        the row's constraints met (`strict=True`: 1.0 only when all are), None for a row without any.
    constraint(kind, **args)                              one check as a TRL reward function
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from .text import completion_text, text_language

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def _count_ok(n: int, min_: int | None, max_: int | None) -> bool:
    return (min_ is None or n >= min_) and (max_ is None or n <= max_)


def word_count(text: str, min: int | None = None, max: int | None = None) -> bool:  # noqa: A002 (IFEval's names)
    return _count_ok(len(words(text)), min, max)


def char_count(text: str, min: int | None = None, max: int | None = None) -> bool:  # noqa: A002
    return _count_ok(len(re.sub(r"\s", "", text)), min, max)


def keywords(text: str, keywords: list[str] = (), forbidden: list[str] = ()) -> bool:
    t = text.casefold()
    return all(k.casefold() in t for k in keywords) and not any(k.casefold() in t for k in forbidden)


def no_commas(text: str) -> bool:
    return not any(c in text for c in ",、，")


def json_parses(text: str) -> bool:
    fenced = _FENCE.search(text)
    body = (fenced.group(1) if fenced else text).strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return bool(body)


def language(text: str, lang: str) -> bool:
    if lang not in ("ja", "en"):
        raise ValueError(f"language constraint: lang must be 'ja' or 'en', not {lang!r}")
    return text_language(text) == lang


def ends_with(text: str, phrase: str) -> bool:
    return text.strip().endswith(phrase.strip())


CHECKS: dict[str, Callable[..., bool]] = {
    "word_count": word_count, "char_count": char_count, "keywords": keywords, "no_commas": no_commas,
    "json": json_parses, "language": language, "ends_with": ends_with}


def check(kind: str, text: str, **args) -> bool:
    fn = CHECKS.get(kind)
    if fn is None:
        raise ValueError(f"unknown constraint {kind!r} (known: {', '.join(CHECKS)})")
    try:
        return fn(text, **args)
    except TypeError as e:
        raise ValueError(f"constraint {kind!r}: bad arguments {args} ({e})") from None


def instruction_following(completions, constraints=None, strict: bool = False, **kwargs) -> list[float | None]:
    """Per row, the share of its constraints met (`strict`: all or nothing); None without constraints."""
    if constraints is None:
        return [None] * len(completions)
    out: list[float | None] = []
    for c, cons in zip(completions, constraints, strict=True):
        if not cons:
            out.append(None)
            continue
        text = completion_text(c)
        met = [check(k["type"], text, **{a: v for a, v in k.items() if a != "type"}) for k in cons]
        out.append(float(all(met)) if strict else sum(met) / len(met))
    return out


def constraint(kind: str, **args) -> Callable[..., list[float]]:
    """One constraint with fixed arguments, as a TRL reward function (e.g. constraint("no_commas"))."""
    if kind not in CHECKS:
        raise ValueError(f"unknown constraint {kind!r} (known: {', '.join(CHECKS)})")

    def reward(completions, **kwargs) -> list[float]:
        return [float(check(kind, completion_text(c), **args)) for c in completions]

    reward.__name__ = kind
    return reward


def prompt_language(completions, prompts=None, lang=None, **kwargs) -> list[float | None]:
    """1.0 when the completion is in the row's language (dataset column `lang`, else the prompt's
    own language), 0.0 when it is in another; None when neither can be told."""
    from .text import prompt_text

    n = len(completions)
    langs = list(lang) if lang is not None else [text_language(prompt_text(p)) for p in (prompts or [None] * n)]
    out: list[float | None] = []
    for c, want in zip(completions, langs, strict=True):
        out.append(None if want is None else float(text_language(completion_text(c)) == want))
    return out
