"""PII redaction with typed placeholders, counted per type (regex + validation, one pass).

Types and placeholders:
    EMAIL        <EMAIL>         name@example.co.jp
    CREDIT_CARD  <CREDIT_CARD>   13-19 digits, spaces/dashes allowed, Luhn-checked
                                 (a 16-digit order number that fails Luhn is left alone)
    IP_ADDRESS   <IP_ADDRESS>    IPv4 (octets <= 255) and IPv6 (validated by `ipaddress`)
    POSTAL_CODE  <POSTAL_CODE>   Japanese 〒123-4567 / 郵便番号 123-4567 (the label is kept), and
                                 123-4567 / 1234567 right before a prefecture (東京都千代田区...)
    PHONE        <PHONE>         Japanese 03-1234-5678, 090-1234-5678, 0120-123-456,
                                 03(1234)5678, 09012345678, 0312345678, +81 90-1234-5678;
                                 international +44 20 7946 0958; North American (555) 123-4567,
                                 555-123-4567
    MY_NUMBER    <MY_NUMBER>     Japan's 12-digit individual number (1234 5678 9012, spaces or
                                 dashes optional), check digit verified: 1 random 12-digit number
                                 in 11 passes, the rest are left alone
All patterns are alternatives of one compiled regex, so a document is scanned once; matches
are validated in the callback (digit counts, Luhn, address ranges) and kept verbatim when
validation fails. Boundaries are ASCII-only, since Japanese writes numbers right after words
(`電話03-1234-5678`). Run after normalization: NFKC turns full-width digits (０３) into ASCII.

Dropped documents: a document another step drops never reaches this step, so with
`output.keep_dropped` its raw text would land in dropped/. The executors therefore pass dropped
records through `redact_dropped` (the pipeline's redaction steps with `redact_dropped: true`,
the default) before writing them; `redact_dropped: false` keeps dropped/ raw, PII included.
"""

from __future__ import annotations

import abc
import ipaddress
import re
from collections.abc import Sequence

from ..config.curate import PII_TYPES, PIIConfig
from .pipeline import Doc, Mapper, Step, Tally

PLACEHOLDERS = {t: f"<{t}>" for t in PII_TYPES}
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PREFECTURE = ("(?:北海道|東京都|京都府|大阪府|(?:青森|岩手|宮城|秋田|山形|福島|茨城|栃木|群馬|埼玉|千葉|神奈川|"
               "新潟|富山|石川|福井|山梨|長野|岐阜|静岡|愛知|三重|滋賀|兵庫|奈良|和歌山|鳥取|島根|岡山|広島|山口|"
               "徳島|香川|愛媛|高知|福岡|佐賀|長崎|熊本|大分|宮崎|鹿児島|沖縄)県)")
_PATTERNS = {
    "EMAIL": r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
             r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}",
    "CREDIT_CARD": r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])",
    "IPV4": rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\.?\d)",
    "IPV6": r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{1,4}|:)?(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Za-z:])",
    # before PHONE: 0123-4567-8901 is a My Number with a valid check digit, not a phone number
    "MY_NUMBER": r"(?<![\d-])\d{4}[ -]?\d{4}[ -]?\d{4}(?![\d-])",
    "POSTAL": r"(?:(?<=〒)|(?<=〒 )|(?<=郵便番号)|(?<=郵便番号 )|(?<=郵便番号:)|(?<=郵便番号：))\d{3}-?\d{4}(?!\d)",
    "POSTAL_PREF": rf"(?<![\d-])\d{{3}}-?\d{{4}}(?= ?{_PREFECTURE})",
    "PHONE": r"(?<![0-9A-Za-z+-])(?:"
             r"\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,3}"  # +81 90-1234-5678, +44 20 7946 0958
             r"|0\d{1,4}-\d{1,4}-\d{3,4}"  # 03-1234-5678, 090-1234-5678, 0120-123-456
             r"|0\d{1,4}\(\d{1,4}\)\d{3,4}"  # 03(1234)5678
             r"|\(0\d{1,4}\) ?\d{1,4}-\d{4}"  # (03) 1234-5678
             r"|0[5789]0\d{8}"  # 09012345678
             r"|0[1-9]\d{8}"  # 0312345678 (a landline: 10 digits)
             r"|\(\d{3}\) ?\d{3}-\d{4}|\d{3}[-.]\d{3}[-.]\d{4}"  # North American
             r")(?![0-9A-Za-z-])",
}
_TYPE_OF = {"IPV4": "IP_ADDRESS", "IPV6": "IP_ADDRESS", "POSTAL": "POSTAL_CODE", "POSTAL_PREF": "POSTAL_CODE"}
_DIGITS = re.compile(r"\d")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def my_number_ok(digits: str) -> bool:
    """The check digit of a 12-digit individual number (the Cabinet Office's rule)."""
    body, check = digits[:11], ord(digits[11]) - 48
    # weights from the right: 2..7 for the first six digits, then 2..6
    total = sum((ord(ch) - 48) * (n + 1 if n <= 6 else n - 5) for n, ch in enumerate(reversed(body), 1))
    r = total % 11
    return check == (0 if r <= 1 else 11 - r)


def _valid(kind: str, s: str) -> bool:
    if kind == "CREDIT_CARD":
        digits = "".join(_DIGITS.findall(s))
        return 13 <= len(digits) <= 19 and luhn_ok(digits)
    if kind == "MY_NUMBER":
        return my_number_ok("".join(_DIGITS.findall(s)))
    if kind == "IPV6":
        if sum(1 for g in s.split(":") if g) < 2:  # `::`, `a::` are code, not addresses
            return False
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            return False
        return True
    if kind == "PHONE":
        n = len(_DIGITS.findall(s))
        if s.startswith("+"):
            return 8 <= n <= 15  # E.164 allows at most 15 digits
        return n in (10, 11) if s.startswith(("0", "(0")) else n == 10
    return True


class Redactor(Mapper):
    """Replace spans of a doc with typed placeholders (`redact`), counting docs and spans per type."""

    @abc.abstractmethod
    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """(text with placeholders, {type: spans replaced})."""

    def apply(self, doc: Doc, tally: Tally) -> None:
        text, counts = self.redact(doc["text"])
        if counts:
            doc["text"] = text
            tally.modified("docs_redacted")
            for t, n in counts.items():
                tally.modified(t, n)


class PIIRedactor(Redactor):
    name = "pii"
    config_class = PIIConfig

    def __init__(self, config: PIIConfig | None = None, /, **kw) -> None:
        super().__init__(config, **kw)
        self.types = tuple(self.config.types)
        kinds = [k for k in _PATTERNS if _TYPE_OF.get(k, k) in self.types]
        self._re = re.compile("|".join(f"(?P<{k}>{_PATTERNS[k]})" for k in kinds)) if kinds else None

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        counts: dict[str, int] = {}
        if self._re is None:
            return text, counts

        def sub(m: re.Match) -> str:
            kind = m.lastgroup
            s = m.group()
            if not _valid(kind, s):
                return s
            t = _TYPE_OF.get(kind, kind)
            counts[t] = counts.get(t, 0) + 1
            return PLACEHOLDERS[t]

        return self._re.sub(sub, text), counts


def dropped_redactors(steps: Sequence[Step]) -> list[Redactor]:
    """The pipeline's redaction steps that also redact dropped/ (`redact_dropped`, on by default)."""
    return [s for s in steps if isinstance(s, Redactor) and s.config.redact_dropped]


def redact_dropped(records: list[Doc], redactors: Sequence[Redactor]) -> list[Doc]:
    """Drop records (`{**doc, "drop": ...}`, fresh dicts) with their text redacted in place."""
    for rec in records:
        if redactors and isinstance(rec.get("text"), str):
            for r in redactors:
                rec["text"] = r.redact(rec["text"])[0]
    return records
