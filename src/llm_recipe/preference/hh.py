"""The helpful-harmless (HH) training set: harmful requests answered with a helpful refusal, their
benign look-alikes and ordinary prompts answered helpfully (InstructGPT / HH-RLHF's two goals at once).

    resources/hh/hh-prompts-v1.jsonl     hand-written training prompts: kind harmful | benign | ordinary,
                                         category (harm domain; for look-alikes the XSTest-like type),
                                         lang; none of them is an eval prompt (`ngram_overlap`)
    resources/hh/refusal-pieces-v1.json  hand-written refusal parts: openers, a reason and a safe
                                         alternative per category, bare over-refusals
    resources/hh/hh-v1.jsonl             the two composed by `build_hh_set` (`python -m
                                         llm_recipe.preference.hh` rewrites it): every prompt with a
                                         refusal (harmful: a helpful refusal, the chosen answer; benign /
                                         ordinary: a bare over-refusal, the rejected answer)

    load_hh_set(path)                the items; a bad line is an error naming file:line
    own_answers(model, tok, items)   the model's own greedy answers (cut back to their last full sentence
                                     when the length limit cut them)
    hh_sft_records(items, answers)   SFT: harmful -> its refusal; benign / ordinary -> the model's own answer
    hh_pairs(items, answers)         DPO: harmful: the refusal over the model's own answer; benign /
                                     ordinary: the model's own answer over an over-refusal
    ngram_overlap(texts, others, n)  per text, the largest share of its character n-grams found in any
                                     one of `others` (the set against the eval sets' prompts)

The helpful answers are the starting model's own: training on them keeps what the model says to
ordinary prompts (self-distillation) while only the harmful requests move. Where the model's own
answer cannot serve (it refuses a benign prompt, it is empty, or it already refuses a harmful one)
the record is skipped and counted by reason (`SkipLog`), never dropped silently. Whether an answer
refuses is decided by the caller's `is_refusal` (the eval layer's detector), passed in.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import SamplingConfig
from ..files import BadLine
from ..infer.generate import generate_chat
from ..provenance import file_sha256
from ..record_sources import iter_source
from .records import PreferencePair, SkipLog

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "hh"
PROMPTS = RESOURCES / "hh-prompts-v1.jsonl"
PIECES = RESOURCES / "refusal-pieces-v1.json"
BUNDLED = RESOURCES / "hh-v1.jsonl"
KINDS = ("harmful", "benign", "ordinary")
# the end of a full sentence (EN / JA), for answers the length limit cut
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|[。！？]|\n")


@dataclass(frozen=True)
class HHItem:
    id: str
    lang: str
    kind: str  # harmful | benign | ordinary
    category: str
    prompt: str
    refusal: str  # harmful: the helpful refusal (chosen); otherwise an over-refusal (rejected)


def _check(rec: dict, where: str, keys: Sequence[str]) -> None:
    for k in keys:
        if not isinstance(rec.get(k), str) or not rec[k].strip():
            raise ValueError(f"{where}: missing or empty '{k}'")
    if rec["kind"] not in KINDS:
        raise ValueError(f"{where}: 'kind' must be one of {', '.join(KINDS)} (got {rec['kind']!r})")


def _read(path: Path, keys: Sequence[str]) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: HH set not found")
    out = []
    for where, rec in iter_source(path):
        if isinstance(rec, BadLine):
            raise ValueError(str(rec))
        _check(rec, where, keys)
        out.append(rec)
    return out


def compose_refusal(pieces: dict, lang: str, category: str, key: str, seed: int = 0) -> str:
    """A helpful refusal: an opener, the category's reason and a safe alternative, chosen by a
    generator seeded with (seed, key) so the same prompt always gets the same words."""
    p, rng = pieces[lang], random.Random(f"{seed}:{key}")
    parts = [rng.choice(p["openers"]), rng.choice(p["reasons"][category]), rng.choice(p["alternatives"][category])]
    return (" " if lang != "ja" else "").join(parts)


def build_hh_set(prompts: str | os.PathLike = PROMPTS, pieces: str | os.PathLike = PIECES, seed: int = 0) -> list[dict]:
    """Every training prompt with its refusal (the records of `hh-v1.jsonl`)."""
    parts = json.loads(Path(pieces).read_text(encoding="utf-8"))
    out = []
    for rec in _read(Path(prompts), ("id", "lang", "kind", "category", "prompt")):
        if rec["kind"] == "harmful":
            refusal = compose_refusal(parts, rec["lang"], rec["category"], rec["id"], seed)
        else:
            refusal = random.Random(f"{seed}:{rec['id']}").choice(parts[rec["lang"]]["over_refusals"])
        out.append({**rec, "refusal": refusal})
    return out


@dataclass
class HHSet:
    path: str
    sha256: str
    items: list[HHItem]

    def describe(self) -> dict:
        kinds = {k: sum(it.kind == k for it in self.items) for k in KINDS}
        return {"path": self.path, "sha256": self.sha256, "items": len(self.items), **kinds}


def load_hh_set(path: str | os.PathLike | None = None) -> HHSet:
    p = Path(path) if path else BUNDLED
    recs = _read(p, ("id", "lang", "kind", "category", "prompt", "refusal"))
    items = [HHItem(r["id"], r["lang"], r["kind"], r["category"], r["prompt"], r["refusal"]) for r in recs]
    if not any(it.kind == "harmful" for it in items) or not any(it.kind != "harmful" for it in items):
        raise ValueError(f"{p}: an HH set needs harmful prompts and prompts to answer (benign or ordinary)")
    return HHSet(str(p), file_sha256(p), items)


def cut_to_sentence(text: str) -> str:
    """The text up to its last full sentence (the whole text when it has none)."""
    text = text.strip()
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].rstrip() if ends else text


def own_answers(model, tokenizer, items: Sequence[HHItem], sampling: SamplingConfig, seed: int = 0,
                chat_format: str | None = None) -> list[str]:
    """The model's own answers to every prompt; an answer the length limit cut ends at its last full sentence."""
    gens = generate_chat(model, tokenizer, [it.prompt for it in items], sampling, seed, chat_format=chat_format)
    return [cut_to_sentence(g.text) if g.finish_reason == "length" else g.text.strip() for g in gens]


def _usable(it: HHItem, answer: str, is_refusal: Callable[[str], bool], log: SkipLog) -> bool:
    """Whether the model's own answer can serve in the item's record (else a counted skip)."""
    if not answer.strip():
        log.skip("empty_own_answer", it.id)
        return False
    if it.kind != "harmful" and is_refusal(answer):
        log.skip(f"own_answer_refuses_{it.kind}", it.id, answer[:80])
        return False
    return True


def hh_sft_records(items: Sequence[HHItem], answers: Sequence[str], is_refusal: Callable[[str], bool],
                   log: SkipLog) -> list[tuple[str, dict]]:
    """(where, {"messages": ...}) per item: harmful prompts answered by their refusal, the others by the
    model's own answer."""
    out = []
    for it, ans in zip(items, answers, strict=True):
        if it.kind == "harmful":
            reply = it.refusal
        elif _usable(it, ans, is_refusal, log):
            reply = ans
        else:
            continue
        log.kept += 1
        out.append((f"hh:{it.id}", {"messages": [{"role": "user", "content": it.prompt},
                                                 {"role": "assistant", "content": reply}]}))
    return out


def hh_pairs(items: Sequence[HHItem], answers: Sequence[str], is_refusal: Callable[[str], bool],
             log: SkipLog, kinds: Sequence[str] = KINDS) -> list[PreferencePair]:
    """Preference pairs of the items of `kinds`: a refusal over the model's own answer to a harmful
    prompt (skipped when that answer already refuses), the own answer over an over-refusal otherwise."""
    out = []
    for it, ans in zip(items, answers, strict=True):
        if it.kind not in kinds or not _usable(it, ans, is_refusal, log):
            continue
        if it.kind == "harmful" and is_refusal(ans):
            log.skip("own_answer_already_refuses_harmful", it.id, ans[:80])
            continue
        chosen, rejected = (it.refusal, ans) if it.kind == "harmful" else (ans, it.refusal)
        log.kept += 1
        out.append(PreferencePair(it.prompt, chosen, rejected,
                                  meta={"id": it.id, "kind": it.kind, "category": it.category, "lang": it.lang}))
    return out


def _ngrams(text: str, n: int) -> set[str]:
    t = re.sub(r"\s+", " ", text.casefold()).strip()
    return {t[i : i + n] for i in range(max(len(t) - n + 1, 1))}


def ngram_overlap(texts: Sequence[str], others: Sequence[str], n: int = 12) -> list[float]:
    """Per text: the largest share of its character n-grams that occur in one of `others`
    (0 = no shared n-gram with any; 1 = contained in one)."""
    index: dict[str, list[int]] = {}
    for j, o in enumerate(others):
        for g in _ngrams(o, n):
            index.setdefault(g, []).append(j)
    out = []
    for t in texts:
        grams = _ngrams(t, n)
        hits: dict[int, int] = {}
        for g in grams:
            for j in set(index.get(g, ())):
                hits[j] = hits.get(j, 0) + 1
        out.append(max(hits.values()) / len(grams) if hits else 0.0)
    return out


def main() -> None:
    """Rewrite the bundled `hh-v1.jsonl` from the hand-written prompts and refusal pieces."""
    from ..files import write_jsonl

    recs = build_hh_set()
    write_jsonl(BUNDLED, recs)
    print(f"{BUNDLED}: {len(recs)} items")


if __name__ == "__main__":
    main()
