"""Import of human annotation files (several annotators per item).

One JSONL line per (item, annotator) judgement:
    {"item_id": "q17", "annotator": "ann-2", "label": "A" | "B" | "tie" | "both_bad",
     "prompt": ..., "response_a": ..., "response_b": ...}
`label` may also be a six-level grade ("a_much_better" ... "b_much_better", or 1..6), which
counts as A or B for agreement. "both_bad" (neither answer is acceptable) is a category of its
own: it agrees only with "both_bad", and such items never become pairs. The item's texts may be
repeated on every line or given once.
Bad lines (missing fields, unknown label, a second judgement of the same item by the same
annotator) are counted by reason with file:line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .converters import GRADE_BY_NUMBER, GRADES
from .records import InvalidRecord, SkipLog, check_prompt, check_response, iter_records

LABELS = ("A", "B", "tie", "both_bad")
_ALIASES = {"a": "A", "b": "B", "tie": "tie", "equal": "tie", "same": "tie", "none": "tie",
            "both_bad": "both_bad", "both bad": "both_bad"}


@dataclass
class AnnotatedItem:
    item_id: str
    prompt: str | list[dict] | None = None
    response_a: str | None = None
    response_b: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # annotator -> "A" | "B" | "tie"
    where: str = ""

    @property
    def has_texts(self) -> bool:
        return self.prompt is not None and self.response_a is not None and self.response_b is not None


def normalize_label(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = GRADE_BY_NUMBER.get(value, value)
    if isinstance(value, str):
        if value in GRADES:
            return GRADES[value][0].upper()
        if value.strip().lower() in _ALIASES:
            return _ALIASES[value.strip().lower()]
    raise InvalidRecord("unknown_label", f"{value!r} (use A, B, tie, both_bad or a six-level grade)")


def add_annotation(items: dict[str, AnnotatedItem], rec: dict, where: str) -> None:
    """Add one judgement record to `items` (by item id); raises InvalidRecord, leaving `items`
    without the judgement, when the record is unusable."""
    for key in ("item_id", "annotator", "label"):
        if rec.get(key) in (None, ""):
            raise InvalidRecord("missing_field", key)
    label = normalize_label(rec["label"])
    item_id, annotator = str(rec["item_id"]), str(rec["annotator"])
    item = items.setdefault(item_id, AnnotatedItem(item_id, where=where))
    if annotator in item.labels:
        raise InvalidRecord("duplicate_annotation", f"{annotator} already labeled {item_id}")
    if item.prompt is None and rec.get("prompt") is not None:
        item.prompt = check_prompt(rec["prompt"])
    for key in ("response_a", "response_b"):
        if getattr(item, key) is None and rec.get(key) is not None:
            setattr(item, key, check_response(rec[key], key))
    item.labels[annotator] = label


def read_annotations(files: Sequence[str | os.PathLike]) -> tuple[dict[str, AnnotatedItem], SkipLog]:
    log = SkipLog()
    items: dict[str, AnnotatedItem] = {}
    for where, rec in iter_records(files, log, "annotation"):
        try:
            add_annotation(items, rec, where)
        except InvalidRecord as e:
            log.skip(e.reason, where, e.detail)
            continue
        log.kept += 1
    return items, log
