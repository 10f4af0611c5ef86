"""Numbers written the ways Japanese and English answers write them, read as exact fractions.

    parse_number("１２個")      -> Fraction(12)        full-width digits (NFKC), units after it ignored
    parse_number("十二")        -> Fraction(12)        kanji numerals: 〇一二三四五六七八九 十百千 万億兆
    parse_number("1,200円")     -> Fraction(1200)      thousands separators (groups of exactly 3 digits)
    parse_number("3分の2")      -> Fraction(2, 3)      Japanese fractions: denominator first
    parse_number("1/2") == parse_number("0.5")          a/b and decimals are the same number
    parse_number("−3") == parse_number("マイナス3")      minus signs (ASCII, U+2212, full width, マイナス)
    parse_number("\\frac{2}{3}")                        LaTeX fractions (what \\boxed{} holds)
    number_spans(text)          every number in `text`, in order, with its position

A number is compared as a `fractions.Fraction`, never as a string: "12.0" equals "12", "0.50"
equals "1/2", and "12" never equals "120" or "1.2".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
                "壱": 1, "弐": 2, "参": 3}
KANJI_SMALL = {"十": 10, "百": 100, "千": 1000}
KANJI_BIG = {"万": 10**4, "億": 10**8, "兆": 10**12}
MINUS = r"(?:-|−|マイナス|ﾏｲﾅｽ)"
_KANJI = "".join(KANJI_DIGITS) + "".join(KANJI_SMALL) + "".join(KANJI_BIG)

# One plain number: digits with thousands separators, or plain digits, optionally a decimal part;
# digits may be followed by 万/億/兆 (3万 = 30000, 1.5万 = 15000) or be a kanji numeral.
_DEC = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_PLAIN = rf"(?:(?:{_DEC})(?:[万億兆](?:\d+[万億兆千百十]?)*)?|[{_KANJI}]+)"
NUMBER_RE = re.compile(
    rf"(?P<sign>{MINUS}\s?)?(?:"
    rf"\\d?frac\{{(?P<tn>{_PLAIN})\}}\{{(?P<td>{_PLAIN})\}}"  # \frac{a}{b}
    rf"|(?P<jd>{_PLAIN})分の(?P<jn>{_PLAIN})"  # b分のa = a/b
    rf"|(?P<num>{_PLAIN})(?:\s?/\s?(?P<den>{_PLAIN}))?"  # a or a/b
    rf")")


def normalize(text: str) -> str:
    """NFKC (full-width digits, colons, slashes to ASCII) with the minus sign kept apart."""
    return unicodedata.normalize("NFKC", text).replace("\u2212", "-").replace("\u2010", "-")


def _kanji_below_10k(s: str) -> int | None:
    total, digit = 0, None
    for ch in s:
        if ch in KANJI_DIGITS:
            if digit is not None:  # "二三" is not a number written in kanji numerals
                return None
            digit = KANJI_DIGITS[ch]
        elif ch.isdigit():
            digit = digit * 10 + int(ch) if digit is not None else int(ch)
        elif ch in KANJI_SMALL:
            total += (1 if digit is None else digit) * KANJI_SMALL[ch]
            digit = None
        else:
            return None
    return total + (digit or 0)


def _plain_value(s: str) -> Fraction | None:
    """Value of one `_PLAIN` match (digits, a kanji numeral, or digits with 万/億/兆)."""
    s = s.replace(",", "")
    if re.fullmatch(r"\d*\.?\d+", s):
        return Fraction(s)
    total, rest = Fraction(0), s
    for big in ("兆", "億", "万"):
        head, sep, tail = rest.partition(big)
        if sep:
            part = _head_value(head)
            if part is None:
                return None
            total += part * KANJI_BIG[big]
            rest = tail
    if rest:
        small = _head_value(rest)
        if small is None:
            return None
        total += small
    return total


def _head_value(s: str) -> Fraction | None:
    if not s:
        return Fraction(1)  # "万" alone is 10000
    if re.fullmatch(r"\d*\.?\d+", s):
        return Fraction(s)
    v = _kanji_below_10k(s)
    return None if v is None else Fraction(v)


@dataclass(frozen=True)
class NumberSpan:
    value: Fraction
    start: int
    end: int
    text: str
    arabic: bool  # written with digits (not only kanji numerals)


def _span_value(m: re.Match, negative: bool) -> Fraction | None:
    if m["tn"] is not None:
        num, den = _plain_value(m["tn"]), _plain_value(m["td"])
    elif m["jd"] is not None:
        num, den = _plain_value(m["jn"]), _plain_value(m["jd"])
    else:
        num = _plain_value(m["num"])
        den = _plain_value(m["den"]) if m["den"] is not None else Fraction(1)
    if num is None or den is None or den == 0:
        return None
    return -(num / den) if negative else num / den


def _is_negative(t: str, m: re.Match) -> bool:
    """A minus sign makes the number negative unless it is a subtraction (`12 - 5`, `(3)-1`)."""
    if not m["sign"]:
        return False
    before = t[: m.start()].rstrip()
    return not (before and ((before[-1].isascii() and before[-1].isalnum()) or before[-1] in ")]}"))


def number_spans(text: str) -> list[NumberSpan]:
    """Every number of `text` (after `normalize`), in order. A digit run glued to ASCII letters on
    its left (`x2`, `A4`) is not a number of the answer."""
    t = normalize(text)
    out = []
    for m in NUMBER_RE.finditer(t):
        first = m.start("sign") if m["sign"] else m.start()
        if not m["sign"] and first > 0 and t[first - 1].isascii() and t[first - 1].isalpha() and m["tn"] is None:
            continue
        negative = _is_negative(t, m)
        v = _span_value(m, negative)
        if v is not None:
            start = m.start() if negative else m.end("sign") if m["sign"] else m.start()
            out.append(NumberSpan(v, start, m.end(), t[start : m.end()],
                                  any(c in "0123456789" for c in m.group(0))))
    return out


def parse_number(text: str | int | float | Fraction) -> Fraction | None:
    """The one number `text` states (units and words around it ignored), or None when it states
    none or several different ones."""
    if isinstance(text, (int, Fraction)):
        return Fraction(text)
    if isinstance(text, float):
        return Fraction(str(text))
    spans = number_spans(str(text))
    values = {s.value for s in spans}
    return spans[0].value if len(values) == 1 else None
