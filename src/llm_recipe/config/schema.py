"""Every field of the config, as `llm-recipe config schema [SECTION]` prints it.

    field_rows(cls, prefix)   (dotted name, type, default, description) of every field, sub-blocks
                              walked (a `sft.lora` block's fields as `sft.lora.r`, ...)
    format_schema(rows)       the printable table
    aliases_of(cls, prefix)   other libraries' names each section reads (`Section.aliases`)

The descriptions are the fields' own (`Field(description=...)`); a test checks that none is missing.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .section import Section


@dataclass(frozen=True)
class FieldRow:
    name: str
    type: str
    default: str
    description: str


def type_name(annotation) -> str:
    """`int | None`, `list[path]`, `cosine | linear | constant` (a Literal's choices): short and exact."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(type_name(a) for a in args)
    if origin in (list, tuple, dict, set):
        inner = ", ".join(type_name(a) for a in args if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    if annotation is type(None):
        return "None"
    if annotation is Path:
        return "path"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(str(m.value) for m in annotation)
    return getattr(annotation, "__name__", str(annotation))


def choices(cls: type[BaseModel], name: str) -> str:
    """A Literal field's choices, `a | b | c` (command help lists them from the one definition)."""
    annotation = cls.model_fields[name].annotation
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    return type_name(annotation)


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(block)"
    if isinstance(value, Path):
        return str(value)
    return repr(value) if isinstance(value, str) else str(value)


def _section_of(annotation) -> type[Section] | None:
    for a in (annotation, *typing.get_args(annotation)):
        if isinstance(a, type) and issubclass(a, Section):
            return a
    return None


def _doc(cls: type) -> str:
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def description(cls: type[BaseModel], name: str) -> str:
    """A field's description; a subclass that only changes a default (`SFTConfig.lr`) keeps the one
    its parent gives (`OptimConfig.lr`)."""
    for c in cls.__mro__:
        field = getattr(c, "model_fields", {}).get(name)
        if field is not None and field.description:
            return field.description
    return ""


def field_rows(cls: type[BaseModel], prefix: str = "") -> list[FieldRow]:
    """Every field of `cls`, depth first; a sub-block is a row of its own (described by its field,
    else by its class's docstring) and then its fields."""
    rows = []
    for name, field in cls.model_fields.items():
        dotted = f"{prefix}{name}"
        sub = _section_of(field.annotation)
        if sub is None:
            rows.append(FieldRow(dotted, type_name(field.annotation), _default(field), description(cls, name)))
            continue
        optional = " | None" if type(None) in typing.get_args(field.annotation) else ""
        rows.append(FieldRow(dotted, f"block {sub.__name__}{optional}", _default(field),
                             description(cls, name) or _doc(sub)))
        rows += field_rows(sub, dotted + ".")
    return rows


def aliases_of(cls: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """{"sft.learning_rate": "sft.lr", ...}: every other-library name the config reads."""
    out = {f"{prefix}{a}": f"{prefix}{t}" for a, t in getattr(cls, "aliases", {}).items()}
    for name, field in cls.model_fields.items():
        if (sub := _section_of(field.annotation)) is not None:
            out.update(aliases_of(sub, f"{prefix}{name}."))
    return out


def format_schema(rows: list[FieldRow]) -> str:
    out = []
    for r in rows:
        out.append(f"{r.name}  ({r.type}; default {r.default})")
        out.append(f"    {r.description}")
    return "\n".join(out)
