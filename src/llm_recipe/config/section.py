"""The base of every config section, and the one error type config problems raise.

Every section forbids unknown keys, so a typo (`lrr: 1e-3`) is an error that names the key and
the file instead of a silently ignored setting. A key that moved elsewhere is listed in a
section's `moved_keys` and named in the error ("bon.temperature moved to bon.sampling.temperature").

A sub-section given partly in YAML (`sampling: {max_new_tokens: 48}`) keeps the defaults its
parent declares for the other fields: a stage's own sampling defaults are not reset to the
generic ones by overriding one field.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A config problem, already phrased as one line naming the file and the field."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # old key -> where it lives now (relative to this section): a clear error, not "unknown key"
    moved_keys: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _moved_and_partial(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for old, new in cls.moved_keys.items():
            if old in data:
                raise PydanticCustomError("moved_key", "'{old}' moved to '{new}'", {"old": old, "new": new})
        merged = None
        for name, field in cls.model_fields.items():
            default, given = field.default, data.get(name)
            if isinstance(default, BaseModel) and isinstance(given, dict):
                merged = merged if merged is not None else dict(data)
                merged[name] = {**default.model_dump(), **given}
        return merged if merged is not None else data
