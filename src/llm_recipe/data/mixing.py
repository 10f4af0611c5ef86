"""Mix curated sources by weight into an exact token budget, with capped upsampling.

`mix(shards, out_dir, weights={"web": .6, "wiki": .1, ...}, token_budget=N)`:
1. Count tokens per document and source (one streaming pass; `llm_recipe.data.tokens`).
2. Target per source = weight x budget (weights normalized; largest-remainder rounding so the
   targets add up to the budget exactly).
3. A source needing more than `max_epochs` passes over its data (or having none) is an error
   that names every such source with its numbers, instead of a silently skewed mixture.
4. Per source, documents are taken in a seeded random order, epoch after epoch (a fresh
   order each epoch), until the target is reached; the last document is cut to the remaining
   tokens (`truncate_last`), so the realized total equals the budget exactly. Repeats get ids
   `id#e1`, `id#e2` and `meta.mix_epoch`.
5. Output shards are globally shuffled with a two-pass bucket shuffle (random bucket per doc,
   then each bucket shuffled in memory), so memory is bounded by one output shard.
`mixture.json` reports the realized mixture: tokens, docs, share, epochs per source.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import BadLine, write_json
from ..seeds import seed_for
from .readers import ShardReader
from .tokens import TokenCounter
from .writers import ShardWriter


class MixingError(ValueError):
    """The requested mixture cannot be built from the available data (one line, with numbers)."""


@dataclass
class _Source:
    files: list[int]
    lines: list[int]
    tokens: list[int]


def _largest_remainder(weights: dict[str, float], total: int) -> dict[str, int]:
    raw = {s: w * total for s, w in weights.items()}
    out = {s: math.floor(v) for s, v in raw.items()}
    left = total - sum(out.values())
    for s in sorted(raw, key=lambda s: (-(raw[s] - out[s]), s))[:left]:
        out[s] += 1
    return out


def _scan(shards: list[Path], counter: TokenCounter, reader: ShardReader) -> dict[str, _Source]:
    by_source: dict[str, _Source] = defaultdict(lambda: _Source([], [], []))
    for fi, path in enumerate(shards):
        for li, rec in enumerate(reader.read(path)):
            if isinstance(rec, BadLine):
                if rec.reason == "empty_file":
                    continue
                raise MixingError(f"{rec}: curated shard is not readable")
            s = by_source[rec["source"]]
            s.files.append(fi)
            s.lines.append(li)
            s.tokens.append(counter.count(rec["text"]))
    return dict(by_source)


def mixture_targets(available: dict[str, int], weights: dict[str, float], token_budget: int,
                    max_epochs: float) -> tuple[dict[str, int], dict[str, float]]:
    """Tokens to take per source (weight x budget, largest remainder: they add up to the budget) and
    the normalized weights, from the tokens each source has. A source needing more than `max_epochs`
    passes (or having none) is a `MixingError` naming every such source with its numbers."""
    if token_budget <= 0:
        raise MixingError(f"token_budget must be positive, got {token_budget}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise MixingError(f"mixing weights must be non-negative with a positive sum: {weights}")
    total_w = sum(weights.values())
    norm = {s: w / total_w for s, w in weights.items() if w > 0}
    targets = _largest_remainder(norm, token_budget)
    problems = []
    for s, t in targets.items():
        have = available.get(s, 0)
        if have == 0:
            problems.append(f"'{s}' has no documents after curation (needs {t:,} tokens)")
        elif t / have > max_epochs:
            problems.append(f"'{s}' has {have:,} tokens; its share {norm[s]:.3f} of {token_budget:,} "
                            f"needs {t:,} = {t / have:.2f} epochs > max_epochs {max_epochs}")
    if problems:
        raise MixingError("cannot build the mixture: " + "; ".join(problems))
    return targets, norm


def plan_mixture(
    available: dict[str, _Source], weights: dict[str, float], token_budget: int,
    max_epochs: float, seed: int, truncate_last: bool = True,
) -> tuple[dict[str, list[tuple[int, int, int]]], dict]:
    """Choose docs per source: {source: [(doc index, epoch, tokens kept or -1 = whole)]}."""
    targets, norm = mixture_targets({s: sum(a.tokens) for s, a in available.items()}, weights, token_budget,
                                    max_epochs)
    rng = np.random.default_rng(seed_for("mixing_plan", seed))
    picks: dict[str, list[tuple[int, int, int]]] = {}
    for s in sorted(targets):
        toks = available[s].tokens
        chosen, got, epoch = [], 0, 0
        order, pos = rng.permutation(len(toks)).tolist(), 0
        while got < targets[s]:
            if pos == len(order):  # next epoch, in a fresh order
                epoch, order, pos = epoch + 1, rng.permutation(len(toks)).tolist(), 0
            i, pos = order[pos], pos + 1
            n, need = toks[i], targets[s] - got
            if n == 0:
                continue
            if n <= need:
                chosen.append((i, epoch, -1))
                got += n
            elif truncate_last:
                chosen.append((i, epoch, need))
                got += need
            else:  # budget as an upper bound: stop before the doc that would exceed it
                break
        picks[s] = chosen
    return picks, {"targets": targets, "weights": norm}


def mix(
    shards: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    weights: dict[str, float],
    token_budget: int,
    max_epochs: float = 4.0,
    counter: TokenCounter | None = None,
    seed: int = 0,
    truncate_last: bool = True,
    fmt: str = "jsonl",
    max_docs_per_file: int = 100_000,
) -> dict:
    """Write the mixed corpus to `out_dir/data/` and its report to `out_dir/mixture.json`."""
    counter = counter or TokenCounter()
    reader = ShardReader()
    paths = [Path(p) for p in shards]
    available = _scan(paths, counter, reader)
    picks, plan = plan_mixture(available, weights, token_budget, max_epochs, seed, truncate_last)

    # (file, line) -> [(source, epoch, keep_tokens)]: what to emit while streaming the shards
    wanted: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    n_out = 0
    for s, chosen in picks.items():
        src = available[s]
        for i, epoch, keep in chosen:
            wanted[(src.files[i], src.lines[i])].append((epoch, keep, src.tokens[i]))
            n_out += 1
    out = Path(out_dir)
    data_dir, tmp = out / "data", out / ".mix-buckets"
    for d in (data_dir, tmp):
        shutil.rmtree(d, ignore_errors=True)
    tmp.mkdir(parents=True)
    n_buckets = max(1, math.ceil(n_out / max_docs_per_file))
    rng = np.random.default_rng(seed_for("mixing_order", seed))
    realized: dict[str, dict] = {s: {"tokens": 0, "docs": 0, "truncated_docs": 0} for s in picks}
    with contextlib.ExitStack() as stack:
        buckets = [stack.enter_context(open(tmp / f"{b:05d}.jsonl", "w", encoding="utf-8"))
                   for b in range(n_buckets)]
        for fi, path in enumerate(paths):
            for li, doc in enumerate(reader.read(path)):
                for epoch, keep, n_tokens in wanted.get((fi, li), ()):
                    d = {**doc, "meta": dict(doc["meta"])}
                    if epoch:
                        d["id"] = f"{doc['id']}#e{epoch}"
                        d["meta"]["mix_epoch"] = epoch
                    if keep >= 0:
                        d["text"] = counter.truncate(doc["text"], keep)
                        d["meta"]["mix_truncated"] = True
                        n_tokens = counter.count(d["text"])
                        realized[d["source"]]["truncated_docs"] += 1
                    realized[d["source"]]["tokens"] += n_tokens
                    realized[d["source"]]["docs"] += 1
                    buckets[int(rng.integers(n_buckets))].write(json.dumps(d, ensure_ascii=False) + "\n")
    writer = ShardWriter(data_dir, "mixed", fmt, max_docs_per_file)
    for b in range(n_buckets):
        with open(tmp / f"{b:05d}.jsonl", encoding="utf-8") as f:
            docs = [json.loads(line) for line in f]
        order = rng.permutation(len(docs)).tolist()
        writer.write([docs[i] for i in order])
    files = [str(p) for p in writer.close()]
    shutil.rmtree(tmp, ignore_errors=True)

    report = _mix_report(available, picks, plan, realized, files, token_budget=token_budget,
                         counter=counter.name, seed=seed, max_epochs=max_epochs)
    write_json(out / "mixture.json", report)
    return report


def _mix_report(available: dict, picks: dict, plan: dict, realized: dict[str, dict], files: list[str], *,
                token_budget: int, counter: str, seed: int, max_epochs: float) -> dict:
    """`mixture.json`: per source its weight, target, what was available and what was written."""
    total = sum(r["tokens"] for r in realized.values())
    report = {
        "token_budget": token_budget,
        "realized_tokens": total,
        "token_counter": counter,
        "seed": seed,
        "max_epochs": max_epochs,
        "sources": {
            s: {
                "weight": plan["weights"][s],
                "target_tokens": plan["targets"][s],
                "available_tokens": int(sum(available[s].tokens)),
                "available_docs": len(available[s].tokens),
                "realized_tokens": realized[s]["tokens"],
                "realized_docs": realized[s]["docs"],
                "realized_share": realized[s]["tokens"] / total if total else 0.0,
                "epochs": realized[s]["tokens"] / max(1, sum(available[s].tokens)),
                "truncated_docs": realized[s]["truncated_docs"],
            }
            for s in sorted(picks)
        },
        "unused_sources": sorted(set(available) - set(picks)),
        "outputs": files,
    }
    return report

