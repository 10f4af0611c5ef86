"""The base of every config section, and the one error type config problems raise.

Every section forbids unknown keys, so a typo (`lrr: 1e-3`) is an error that names the key and
the file instead of a silently ignored setting. A key that moved elsewhere is listed in a
section's `moved_keys` and named in the error ("bon.temperature moved to bon.sampling.temperature").

A sub-section given partly in YAML (`sampling: {max_new_tokens: 48}`) keeps the defaults its
parent declares for the other fields: a stage's own sampling defaults are not reset to the
generic ones by overriding one field.
"""

from __future__ import annotations

import os
import sys
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A config problem, already phrased as one line naming the file and the field."""


def _takes_int_not_bool(annotation) -> bool:
    """An `int` field (or `int | None`): YAML's `true` must not pass as 1 there."""
    args = typing.get_args(annotation) or (annotation,)
    return int in args and bool not in args


_SAID: set[tuple[str, str]] = set()


def note(msg: str) -> None:
    """A one-line note on stderr (main process only, once per message): config is read before any
    console exists, and stdout may be a result (`llm-recipe config show`)."""
    if os.environ.get("RANK", "0") == "0" and ("note", msg) not in _SAID:
        _SAID.add(("note", msg))
        print(f"[llm-recipe] note: {msg}", file=sys.stderr, flush=True)


def _resolve_aliases(cls, data: dict) -> dict:
    """Other libraries' names (`cls.aliases`) replaced by this section's fields, each said once."""
    found = [a for a in cls.aliases if a in data]
    if not found:
        return data
    data = dict(data)
    for alias in found:
        target = cls.aliases[alias]
        head, _, rest = target.partition(".")
        value = data.pop(alias)
        if rest:  # a field of a sub-block: merged into what the block already says
            block = data.get(head)
            data[head] = {**(block if isinstance(block, dict) else {}), rest: value}
        elif head in data:
            raise PydanticCustomError("alias_clash", "'{alias}' and '{field}' name the same setting: give one",
                                      {"alias": alias, "field": head})
        else:
            data[head] = value
        note(f"'{alias}' is read as '{target}' (llm-recipe's name for it)")
    return data


class Section(BaseModel):
    # no NaN / inf (`lr=inf` would train on NaN), no unknown keys
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # old key -> where it lives now (relative to this section): a clear error, not "unknown key"
    moved_keys: ClassVar[dict[str, str]] = {}
    # another library's name (TRL / transformers / peft) -> this section's field (dotted: a sub-block's
    # field): read as the field, with a one-line note naming it
    aliases: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _moved_and_partial(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _resolve_aliases(cls, data)
        for old, new in cls.moved_keys.items():
            if old in data:
                raise PydanticCustomError("moved_key", "'{old}' moved to '{new}'", {"old": old, "new": new})
        for name, field in cls.model_fields.items():
            if isinstance(data.get(name), bool) and _takes_int_not_bool(field.annotation):
                raise PydanticCustomError("bool_for_int", "{name}: expected a number, got {value}",
                                          {"name": name, "value": str(data[name]).lower()})
        merged = None
        for name, field in cls.model_fields.items():
            default, given = field.default, data.get(name)
            if isinstance(default, BaseModel) and isinstance(given, dict):
                merged = merged if merged is not None else dict(data)
                merged[name] = {**default.model_dump(), **given}
        return merged if merged is not None else data
