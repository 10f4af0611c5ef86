"""Items to annotate from a candidates file (`prefs generate` output) or a pairs file.

A candidates record {"prompt", "responses": [...]} is one item in ranking mode (all k answers);
in pairwise and scale modes it is one item per pair of its answers (`N/i-j`; just `N` when k = 2).
A pairs file (any shape `prefs convert` reads) gives one item per pair, its answers in file order.
Bad records are skipped and counted with file:line, as every reader of the project does.
"""

from __future__ import annotations

import itertools
import os

from ..preference.converters import read_preference_files
from ..preference.records import SkipLog
from ..record_sources import iter_source


def is_candidates(path: str | os.PathLike) -> bool:
    """A file whose first record has `responses` but no `ranking` holds candidates, not pairs."""
    first = next((rec for _, rec in iter_source(path) if isinstance(rec, dict)), {})
    return "responses" in first and "ranking" not in first


def read_items(path: str | os.PathLike, mode: str) -> tuple[list[dict], SkipLog]:
    """[{"ext_id", "prompt", "responses", "where"}] and the skip log."""
    from ..preference.label import read_candidates  # imports torch: only on an upload

    log = SkipLog()
    out = []
    if is_candidates(path):
        for n, c in enumerate(read_candidates([path], log), start=1):
            responses = list(dict.fromkeys(c["responses"]))  # distinct answers, first occurrence first
            if mode == "ranking" or len(responses) == 2:
                out.append({"ext_id": str(n), "prompt": c["prompt"], "responses": responses, "where": c["where"]})
                continue
            for i, j in itertools.combinations(range(len(responses)), 2):
                out.append({"ext_id": f"{n}/{i}-{j}", "prompt": c["prompt"],
                            "responses": [responses[i], responses[j]], "where": c["where"]})
    else:
        pairs, log = read_preference_files([path])
        out = [{"ext_id": str(n), "prompt": p.prompt, "responses": [p.chosen, p.rejected],
                "where": str(p.meta.get("source", path))} for n, p in enumerate(pairs, start=1)]
    log.kept = len(out)
    return out, log
