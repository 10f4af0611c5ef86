"""The built-in verifiers by name: what a `{kind: verifier, name: ..., args: {...}}` reward source
names. Each is a TRL reward function (`completions` and the dataset's columns as keyword arguments,
one float or None per completion); `args` are its fixed settings.

    math_answer          final answer == the reference number (column `answer` / `solution`)
    answer_last_line     the last line is the answer line ("Answer: 12", 「答え：12」)
    regex_format         args: pattern, full
    think_answer         "<think>...</think><answer>...</answer>"
    instruction_following  IFEval-style constraints per row (column `constraints`); args: strict
    prompt_language      answered in the row's language (column `lang`, else the prompt's)
    word_count, char_count, keywords, no_commas, json, language, ends_with
                         one constraint with fixed args (e.g. {name: word_count, args: {max: 50}})
    overlong_penalty     DAPO's soft overlong punishment; args: max_tokens, cache_tokens
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from .constraints import CHECKS, constraint, instruction_following, prompt_language
from .format import answer_last_line, regex_format, think_answer
from .length import overlong_penalty
from .math_answer import math_answer

FUNCTIONS: dict[str, Callable] = {
    "math_answer": math_answer, "answer_last_line": answer_last_line, "regex_format": regex_format,
    "think_answer": think_answer, "instruction_following": instruction_following,
    "prompt_language": prompt_language, "overlong_penalty": overlong_penalty}
VERIFIER_NAMES = (*FUNCTIONS, *CHECKS)


def verifier(name: str, **args) -> Callable:
    """The verifier `name` with its settings `args` fixed, as a TRL reward function."""
    if name in CHECKS:
        return constraint(name, **args)
    fn = FUNCTIONS.get(name)
    if fn is None:
        raise ValueError(f"unknown verifier {name!r} (built-in: {', '.join(VERIFIER_NAMES)})")
    if not args:
        return fn
    bound = functools.partial(fn, **args)
    functools.update_wrapper(bound, fn)
    return bound
