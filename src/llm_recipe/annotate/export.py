"""Export of a project: its answers as an annotation file, then `prefs agreement` on that file.

    annotations.jsonl   one line per (item, annotator) judgement, the format `prefs agreement` reads
    agreement.json      the agreement report (kappa, band, disagreements, kept items)
    pairs.jsonl         the kept items as preference pairs (the low-agreement filter)

The pairs and the report are made by reading annotations.jsonl back with the same reader and the
same function as `llm-recipe prefs agreement annotations.jsonl`, so the output is the same.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import Engine

from ..config import AgreementConfig
from ..files import write_jsonl
from ..preference.agreement import write_agreement
from ..preference.human import read_annotations
from . import store
from .stats import annotation_records

FILES = ("annotations.jsonl", "agreement.json", "pairs.jsonl")


def export_project(engine: Engine, project: dict, out_dir: str | os.PathLike) -> dict:
    """Write the three files into `out_dir` (each atomically); returns the agreement report."""
    out = Path(out_dir)
    records = annotation_records(project, store.answers(engine, project["id"]))
    if not records:
        raise ValueError(f"project {project['name']!r} has no answers to export yet")
    write_jsonl(out / "annotations.jsonl", records)
    items, log = read_annotations([out / "annotations.jsonl"])
    cfg = AgreementConfig(min_agreement=project["min_agreement"])
    return write_agreement(items, log, out / "agreement.json", cfg, out / "pairs.jsonl")
