"""CSV cells that hold a list or a dict, parsed back into one — safely, never with `eval`.

`datasets` (through pandas) writes a list or struct column to CSV as the Python text of the value:
`[{'role': 'user', 'content': 'Hi'}, ...]` (a Python literal, not JSON), and a column of arrays as
NumPy's text: `[{'role': 'user', ...}\\n {'role': 'assistant', ...}]` or `[2 0 1]` (no commas),
with nested arrays as `array([...], dtype=object)` and missing floats as `nan`. Such a cell read
as a string would be trained on as text (a DPO pair "built" from the repr of a conversation).

    parse_cell(text) -> (value, kind)    kind: "json" | "python" | "numpy" (parsed),
                                          "unparsed" (looked like a literal, left as text), or
                                          None (plain text, left as it is)

Only cells that start with `[` or `{` are tried: JSON first, then Python / NumPy text, with NumPy's
missing commas and `array(...)` wrappers restored token by token (Python's own tokenizer; NumPy's
`['a' 'b']` must not become Python's implicit concatenation 'ab') and evaluated by a literal-only
evaluator (constants, lists, tuples, dicts, sets, signed
numbers, `nan` / `inf`). A bare `True` / `False` cell stays text (a completion may be the word
"True"); the readers that expect a boolean (KTO's `label`) accept those words themselves.
"""

from __future__ import annotations

import ast
import io
import json
import math
import tokenize

_NAMES = {"nan": math.nan, "NaN": math.nan, "inf": math.inf, "True": True, "False": False, "None": None}
_SKIP = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.ENCODING,
         tokenize.COMMENT}
_VALUE_TYPES = (tokenize.STRING, tokenize.NUMBER, tokenize.NAME)


def _value(node: ast.AST):
    """The value of a literal-only expression tree; anything else (a call, an attribute) is refused."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_value(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items) if isinstance(node, ast.Tuple) else set(items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_value(k): _value(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    raise ValueError(f"not a literal: {type(node).__name__}")


def _ends_value(tok: tokenize.TokenInfo) -> bool:
    return tok.type in _VALUE_TYPES or tok.string in (")", "]", "}")


def _starts_value(tok: tokenize.TokenInfo) -> bool:
    return tok.type in _VALUE_TYPES or tok.string in ("(", "[", "{", "-", "+")


def numpy_text_to_python(text: str) -> tuple[str, bool]:
    """NumPy's text of an (object) array as Python literal text: commas between the items of a
    list, `array([...], dtype=...)` unwrapped. Returns (text, whether anything was repaired);
    raises ValueError when it cannot be such text (a summarised `...` array)."""
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type not in _SKIP]
    except (tokenize.TokenError, SyntaxError) as e:
        raise ValueError(str(e)) from None
    out: list[str] = []
    stack: list[str] = []  # open brackets; "array" for the '(' of array(...)
    prev: str | None = None  # the last token written, as "value" / "open" / "other"
    repaired, i = False, 0
    while i < len(toks):
        tok, s = toks[i], toks[i].string
        nxt = toks[i + 1].string if i + 1 < len(toks) else ""
        if tok.type == tokenize.NAME and s == "array" and nxt == "(":  # array(  -> (nothing)
            stack.append("array")
            repaired, i = True, i + 2
            continue
        if stack and stack[-1] == "array" and (s == ")" or (s == "," and nxt == "dtype")):
            while toks[i].string != ")":  # `, dtype=object)`: to the array's closing parenthesis
                i += 1
            stack.pop()
            prev, i = "value", i + 1
            continue
        if s == "..." or tok.type == tokenize.ERRORTOKEN:
            raise ValueError("summarised or unreadable array text")
        if prev == "value" and stack and stack[-1] == "[" and _starts_value(tok):
            out.append(",")  # NumPy separates items by blanks
            repaired = True
        if s in ("(", "[", "{"):
            stack.append(s)
        elif s in (")", "]", "}") and stack:
            stack.pop()
        out.append(s)
        prev = "value" if _ends_value(tok) else "other"
        i += 1
    return " ".join(out), repaired


def parse_cell(text: str) -> tuple[object, str | None]:
    """(value, kind): a list/dict literal parsed (kind json | python | numpy), text that looks like
    one but is not (kind "unparsed", the text returned), or plain text (kind None)."""
    v = text.strip()
    if v[:1] not in ("[", "{"):
        return text, None
    try:
        return json.loads(v), "json"
    except ValueError:
        pass
    try:  # never ast.literal_eval on the raw text: it would join NumPy's 'a' 'b' into 'ab'
        python, repaired = numpy_text_to_python(v)
        return _value(ast.parse(python, mode="eval").body), "numpy" if repaired else "python"
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, IndexError):
        return text, "unparsed"
