"""Reading a judge's written answer: a pairwise verdict (A, B or tie) or a 1-10 grade.

Judges answer in many shapes; these parsers accept the usual ones and return None for anything
else (the caller counts those as unparseable, never guesses):

    pairwise   "[[A]]", "[[B]]", "[[C]]" (tie, MT-Bench's), a bare "A" / "B", "Assistant A",
               "Response B", "回答A", "Verdict: A", "A is better", "tie" / "引き分け", JSON
               {"winner" | "verdict" | "choice" | "better": "A"}
    grade      "Rating: [[7]]", "[[7]]", "Rating: 7", "Score: 7/10", "7/10", "評価：7", a bare "7",
               JSON {"score" | "rating" | "grade": 7}; only 1 <= grade <= 10

When an answer names several verdicts, the last explicit one ([[X]], then a "verdict:" phrase)
counts: judges reason first and conclude last.
"""

from __future__ import annotations

import json
import re

TIE_WORDS = ("tie", "c", "draw", "equal", "same", "引き分け", "同等", "同じ")
_JSON_KEYS_PAIR = ("winner", "verdict", "choice", "better", "preferred", "answer")
_JSON_KEYS_GRADE = ("score", "rating", "grade")

_BRACKET = re.compile(r"\[\[\s*([^\[\]]{1,12}?)\s*\]\]")
# the letter itself must be a capital A or B ("an answer a user wants" names no assistant)
_LABELLED = re.compile(
    r"(?i:verdict|winner|better|prefer(?:red|ence)?|choice|choose|answer|判定|勝者|より良い|結論)\W{0,3}"
    r"(?i:is|:|：|は)?\s*(?i:assistant|response|answer|output|回答|アシスタント)?\s*[\(（]?\s*([AB])(?![A-Za-z])")
_NAMED = re.compile(r"(?i:assistant|response|answer|output|回答|アシスタント)\s*[\(（]?\s*([AB])(?![A-Za-z])")
_PAREN = re.compile(r"(?i:output|response|answer|assistant)\s*\(([abAB])\)")  # AlpacaEval's "Output (a)"
_BARE = re.compile(r"^[\s\"'*\(（\[]*([AB])[\s\"'*\)）\].:。]*$")
_A_IS_BETTER = re.compile(r"(?<![A-Za-z])([AB])(?:\s+is\s+better|の方が(?:良い|優れ)|が(?:良い|優れ))")

_NUMBER = r"(10(?:\.0+)?|[1-9](?:\.\d+)?)"
_GRADE_PATTERNS = [
    re.compile(r"\[\[\s*" + _NUMBER + r"\s*(?:/\s*10)?\s*\]\]"),
    re.compile(r"(?:rating|score|grade|評価|点数|スコア)\s*[:：=]?\s*\**\s*" + _NUMBER + r"(?!\d)", re.IGNORECASE),
    re.compile(_NUMBER + r"\s*(?:/|out of)\s*10(?!\d)"),
    re.compile(_NUMBER + r"\s*点"),
]
_BARE_NUMBER = re.compile(r"^\s*\**\s*" + _NUMBER + r"\s*\**\s*[.。]?\s*$")


def _json_object(text: str) -> dict | None:
    """The last {...} in the text that parses as a JSON object."""
    for m in reversed(list(re.finditer(r"\{[^{}]*\}", text))):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _pair_label(token: str) -> str | None:
    t = token.strip().strip("\"'*.").lower()
    t = re.sub(r"^(assistant|response|answer|output|回答|アシスタント)\s*", "", t)
    if t in ("a", "b"):
        return t.upper()
    if t in TIE_WORDS:
        return "tie"
    return None


def parse_pairwise(text: str) -> str | None:
    """'A', 'B', 'tie' or None (unparseable)."""
    if not isinstance(text, str) or not text.strip():
        return None
    obj = _json_object(text)
    if obj is not None:
        for k in _JSON_KEYS_PAIR:
            if isinstance(obj.get(k), str) and (label := _pair_label(obj[k])):
                return label
    brackets = [lab for m in _BRACKET.finditer(text) if (lab := _pair_label(m.group(1)))]
    if brackets:
        return brackets[-1]
    if m := _BARE.match(text):
        return m.group(1).upper()
    labelled = _LABELLED.findall(text)
    if labelled:
        return labelled[-1].upper()
    better = _A_IS_BETTER.findall(text)
    if better:
        return better[-1].upper()
    named = {m.upper() for m in _NAMED.findall(text) + _PAREN.findall(text)}
    if len(named) == 1:  # only one of the two is named: that is the pick
        return named.pop()
    low = text.strip().strip(".。!*").lower()
    if low in TIE_WORDS or re.search(r"\b(it'?s a tie|both are equally)\b|引き分け", low):
        return "tie"
    return None


def _grade(value) -> float | None:
    try:
        g = float(value)
    except (TypeError, ValueError):
        return None
    return g if 1 <= g <= 10 else None


def parse_grade(text: str) -> float | None:
    """A grade in [1, 10], or None (unparseable or out of range)."""
    if not isinstance(text, str) or not text.strip():
        return None
    obj = _json_object(text)
    if obj is not None:
        for k in _JSON_KEYS_GRADE:
            if k in obj and (g := _grade(obj[k])) is not None:
                return g
    for pattern in _GRADE_PATTERNS:
        found = pattern.findall(text)
        if found:
            return _grade(found[-1])
    if m := _BARE_NUMBER.match(text):
        return _grade(m.group(1))
    return None
