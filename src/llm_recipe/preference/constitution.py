"""A constitution: the principles Constitutional AI critiques and revises under, and AI feedback
(RLAIF) judges with. A YAML file:

    name: constitution-v1
    principles:
      - id: harmless
        critique: {en: "Identify ... harmful ...", ja: "..."}    # asked after the model's answer
        revision: {en: "Rewrite your answer ...", ja: "..."}     # asked after its critique
        judge:    {en: "Which response is less harmful?", ja: "..."}   # the AI judge's question

Every text is given per language; a prompt in Japanese gets the `ja` texts (falling back to `en`).
The bundled `constitution-v1` and the red-team prompt set `red-team-v1` (12 EN + 12 JA requests,
none of them in the eval stage's safety set) live in `resources/constitutional/`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..files import BadLine
from ..record_sources import check_source, iter_source
from .text_metrics import has_japanese

BUNDLED_DIR = Path(__file__).parent.parent / "resources" / "constitutional"
BUNDLED_CONSTITUTION = BUNDLED_DIR / "constitution-v1.yaml"
BUNDLED_RED_TEAM = BUNDLED_DIR / "red-team-v1.jsonl"
FIELDS = ("critique", "revision", "judge")


@dataclass(frozen=True)
class Principle:
    id: str
    texts: dict[str, dict[str, str]]  # field -> language -> text

    def text(self, field: str, lang: str) -> str:
        by_lang = self.texts[field]
        return by_lang.get(lang) or by_lang["en"]


@dataclass(frozen=True)
class Constitution:
    name: str
    path: str
    principles: tuple[Principle, ...]


def prompt_language(text: str) -> str:
    return "ja" if has_japanese(text) else "en"


def load_constitution(path: str | os.PathLike | None = None) -> Constitution:
    """Read and check a constitution YAML; every problem is one line naming the file and principle."""
    p = Path(path) if path else BUNDLED_CONSTITUTION
    if not p.is_file():
        raise FileNotFoundError(f"{p}: constitution file not found")
    try:
        tree = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{p}: not a readable YAML constitution ({str(e).splitlines()[0]})") from None
    items = tree.get("principles") if isinstance(tree, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{p}: needs a non-empty 'principles' list")
    principles, seen = [], set()
    for i, item in enumerate(items):
        where = f"{p}: principles[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise ValueError(f"{where}: needs an 'id'")
        if item["id"] in seen:
            raise ValueError(f"{where}: duplicate id '{item['id']}'")
        seen.add(item["id"])
        texts = {}
        for field in FIELDS:
            by_lang = item.get(field)
            if isinstance(by_lang, str):
                by_lang = {"en": by_lang}
            if not isinstance(by_lang, dict) or not isinstance(by_lang.get("en"), str) or not by_lang["en"].strip():
                raise ValueError(f"{where} ({item['id']}): '{field}' needs an English text ('en')")
            if not all(isinstance(v, str) and v.strip() for v in by_lang.values()):
                raise ValueError(f"{where} ({item['id']}): '{field}' texts must be non-empty strings")
            texts[field] = dict(by_lang)
        principles.append(Principle(item["id"], texts))
    return Constitution(str(tree.get("name") or p.stem), str(p), tuple(principles))


def read_red_team(files: list[str | os.PathLike] | None = None) -> list[dict]:
    """Red-team prompts [{"id", "lang", "prompt"}] from JSONL/Parquet/... files ('prompt' text;
    'id' and 'lang' optional), or the bundled red-team-v1 set."""
    out = []
    for f in files or [BUNDLED_RED_TEAM]:
        check_source(f, "red-team prompts")
        for where, rec in iter_source(f):
            if isinstance(rec, BadLine):
                raise ValueError(str(rec))
            prompt = rec.get("prompt") if isinstance(rec, dict) else None
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(f"{where}: a red-team record needs a non-empty 'prompt' text")
            out.append({"id": str(rec.get("id") or where), "lang": rec.get("lang") or prompt_language(prompt),
                        "prompt": prompt, "where": where})
    return out
