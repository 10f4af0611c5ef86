"""Benchmark decontamination: documents that share a long n-gram with an evaluation item.

Items: the text fields (`text_keys`) of every record of the bundled evaluation sets
(`resources/eval/*.jsonl`: their prompts) and of user benchmark files (any record source: JSONL,
Parquet, CSV...); a `messages` list gives its user turns (so an SFT held-out file can be listed). A benchmark is named by its file stem, an item by its `id` (else its line).

N-grams (as datatrove's n-gram decontamination, and the 13-gram rule of GPT-3 / Llama reports):
Japanese / CJK items are character n-grams (`char_ngram`, 50) over NFKC text with whitespace and
punctuation removed; other items are word n-grams (`word_ngram`, 13) over lower-cased words with
punctuation removed. An item shorter than n is one n-gram of its own length (its whole text);
one shorter than `min_words` / `min_chars` is too short to be evidence and is left out (counted
in `report["items_too_short"]`). Hashes are xxh64, so the index is the same in every process.

The step (`Decontaminate`, name `decontaminate`) runs before dedup and mixing. A document holding
any item n-gram is dropped (`contaminated`, the matched items in the audit detail) or, with
`action: report`, kept with `meta.contamination`; either way each matched item is counted in the
step's modifications as `<benchmark>#<item>` (documents per item).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import xxhash

from ..config.curate import DecontaminateConfig
from ..record_sources import iter_source
from .pipeline import Doc, Step, Tally

EVAL_DIR = Path(__file__).resolve().parents[1] / "resources" / "eval"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_NOT_WORD = re.compile(r"[^\w]+")


def is_cjk(text: str, share: float = 0.3) -> bool:
    chars = [c for c in text if not c.isspace()]
    return bool(chars) and len(_CJK.findall(text)) / len(chars) >= share


def char_units(text: str) -> str:
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text)).lower()


def word_units(text: str) -> list[str]:
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).split()


def _hashes(units, n: int) -> Iterator[int]:
    if isinstance(units, str):
        for i in range(len(units) - n + 1):
            yield xxhash.xxh64_intdigest(units[i:i + n].encode())
    else:
        for i in range(len(units) - n + 1):
            yield xxhash.xxh64_intdigest("\x00".join(units[i:i + n]).encode())


def benchmark_items(cfg: DecontaminateConfig) -> Iterator[tuple[str, str, str]]:
    """(benchmark, item id, text) for every text field of every benchmark record."""
    files = [*(sorted(EVAL_DIR.glob("*.jsonl")) if cfg.eval_sets else []), *map(Path, cfg.files)]
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f}: benchmark file for decontamination does not exist")
        for i, (_, rec) in enumerate(iter_source(f), start=1):
            if not isinstance(rec, dict):
                continue
            for key in cfg.text_keys:
                value = rec.get(key)
                texts = [value] if isinstance(value, str) else [
                    m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"
                ] if isinstance(value, list) else []  # `messages`: the user turns (an SFT held-out set)
                for t in texts:
                    if isinstance(t, str) and t.strip():
                        yield f.name.split(".")[0], str(rec.get("id", i)), t


class NgramIndex:
    """n-gram hashes of benchmark items. Per kind ("char" / "word"): `long` maps the hashes of the
    n-grams of items at least n long to an item; `short` maps the `min`-length windows of shorter
    items to the items holding them, and such an item matches when a document holds all of its
    windows (its whole text, up to a window's overlap)."""

    def __init__(self, cfg: DecontaminateConfig, items: Iterable[tuple[str, str, str]]) -> None:
        self.sizes = {"char": (cfg.char_ngram, cfg.min_chars), "word": (cfg.word_ngram, cfg.min_words)}
        self.long: dict[str, dict[int, str]] = {"char": {}, "word": {}}
        self.short: dict[str, dict[int, list[str]]] = {"char": defaultdict(list), "word": defaultdict(list)}
        self.need: dict[str, int] = {}
        self.report = {"items": 0, "items_too_short": 0, "ngrams": 0}
        for bench, item, text in items:
            self.add(f"{bench}#{item}", text)
        self.short = {k: dict(v) for k, v in self.short.items()}
        self.report["ngrams"] = sum(len(t) for t in (*self.long.values(), *self.short.values()))

    def add(self, name: str, text: str) -> None:
        kind = "char" if is_cjk(text) else "word"
        units = char_units(text) if kind == "char" else word_units(text)
        n, n_min = self.sizes[kind]
        if len(units) < n_min:
            self.report["items_too_short"] += 1
            return
        self.report["items"] += 1
        if len(units) >= n:
            for h in _hashes(units, n):
                self.long[kind].setdefault(h, name)
            return
        windows = set(_hashes(units, n_min))
        for h in windows:
            if name not in self.short[kind][h]:
                self.short[kind][h].append(name)
        self.need[name] = len(windows)

    def matches(self, text: str) -> list[str]:
        found: set[str] = set()
        for kind in ("char", "word"):
            long, short = self.long[kind], self.short[kind]
            if not long and not short or (kind == "char" and not _CJK.search(text)):
                continue
            units = char_units(text) if kind == "char" else word_units(text)
            n, n_min = self.sizes[kind]
            if long:
                found.update(long[h] for h in _hashes(units, n) if h in long)
            if short:
                seen: dict[str, int] = defaultdict(int)
                for h in {h for h in _hashes(units, n_min) if h in short}:
                    for name in short[h]:
                        seen[name] += 1
                found.update(name for name, k in seen.items() if k == self.need[name])
        return sorted(found)


class Decontaminate(Step):
    name = "decontaminate"
    config_class = DecontaminateConfig

    def __init__(self, config: DecontaminateConfig | None = None, /, **kw) -> None:
        super().__init__(config, **kw)
        self.index = NgramIndex(self.config, benchmark_items(self.config))

    @property
    def report(self) -> dict:
        return self.index.report

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        kept = []
        for doc in batch:
            hits = self.index.matches(doc["text"])
            for item in hits:
                tally.modified(item)
            if not hits:
                kept.append(doc)
            elif self.config.action == "drop":
                tally.drop(doc, "contaminated", hits[:10])
            else:
                doc["meta"] = {**(doc.get("meta") or {}), "contamination": hits}
                kept.append(doc)
        return kept
