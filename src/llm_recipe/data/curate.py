"""`curate()`: a `curate:` config section -> steps -> local executor -> (optional) mixing.

    from llm_recipe.data.curate import curate
    result = curate(cfg.curate, "runs/x/curated", inputs=["data/raw"], seed=0)
    result.files      # curated (or, with `mixing`, mixed) shards, ready for tokenizer training
    result.stats      # the stats.json dict: per-step in/out/drops/modifications

Step order (cheap first, so expensive rules see fewer docs): cp932_mojibake -> normalize ->
blocklist -> language -> min_length -> short_lines -> char_ratios -> gopher_quality ->
gopher_repetition -> hiragana_share -> [extra_steps, e.g. dedup] -> pii -> ner. Dedup runs
after the filters (fewer docs to hash) and before PII (redaction would make near-duplicates
look different).

The recipe's corpus stage (`stages.corpus`) calls it with the bundled sample corpus when the
config names no inputs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import console
from ..config.curate import CurateConfig
from ..files import write_json
from ..record_sources import check_skips
from .dedup.steps import build_dedup_steps
from .executor import run_local
from .filters import (
    CharRatios,
    DomainBlocklist,
    GopherQuality,
    GopherRepetition,
    HiraganaShare,
    LanguageFilter,
    MinLength,
    ShortLines,
)
from .mixing import mix
from .mojibake import Cp932Mojibake
from .ner import NERRedactor, ner_unavailable
from .normalize import Normalize
from .pii import PIIRedactor
from .pipeline import Step
from .quality.steps import build_quality_steps
from .readers import ShardReader, list_shards
from .tokens import make_counter

_FILTERS = [
    ("blocklist", DomainBlocklist),
    ("language", LanguageFilter),
    ("min_length", MinLength),
    ("short_lines", ShortLines),
    ("char_ratios", CharRatios),
    ("gopher_quality", GopherQuality),
    ("gopher_repetition", GopherRepetition),
    ("hiragana", HiraganaShare),
]


@dataclass
class CurateResult:
    out_dir: Path
    files: list[Path]
    stats: dict
    mixture: dict | None = None
    skipped_steps: list[dict] = field(default_factory=list)


def build_steps(cfg: CurateConfig, extra_steps: Sequence[Step] = (), seed: int = 0) -> tuple[list[Step], list[dict]]:
    """The configured steps in pipeline order, and the optional steps left out (with why)."""
    steps: list[Step] = []
    skipped: list[dict] = []
    if cfg.cp932_mojibake.enabled:  # before normalize: NFKC would break the cp932 round trip
        steps.append(Cp932Mojibake(cfg.cp932_mojibake))
    if cfg.normalize.enabled:
        steps.append(Normalize(cfg.normalize))
    for key, cls in _FILTERS:
        c = getattr(cfg, key)
        if c.enabled:
            steps.append(cls(c))
    steps.extend(build_dedup_steps(cfg.dedup, seed))  # global steps: exact, fuzzy, semantic
    steps.extend(build_quality_steps(cfg.quality, seed))  # model-based: after dedup, fewer docs
    steps.extend(extra_steps)
    if cfg.pii.enabled:
        steps.append(PIIRedactor(cfg.pii))
    if cfg.ner.enabled:
        why = ner_unavailable(cfg.ner.model)
        if why:
            console.log(f"curate: NER step skipped: {why}")
            skipped.append({"step": "ner", "reason": why})
        else:
            steps.append(NERRedactor(cfg.ner))
    return steps, skipped


def _leaves(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def fingerprint(cfg: CurateConfig, shards: list[Path], steps: Sequence[Step]) -> dict[str, Any]:
    """What identifies a run for resume: every config field (so a mismatch names the changed
    ones), a hash of the step objects (settings not in the config) and one of the inputs."""
    conf = cfg.model_dump(mode="json", exclude={"executor": {"workers", "progress", "resume"}})
    inputs = hashlib.sha256()
    for p in shards:
        if not p.exists():  # a hub dataset: its name (the hub's revision is not known offline)
            inputs.update(f"hub:{p}".encode())
            continue
        st = p.stat()
        inputs.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    steps_hash = hashlib.sha256(repr([repr(s) for s in steps]).encode()).hexdigest()[:16]
    return {**_leaves(conf), "steps": steps_hash, "inputs": inputs.hexdigest()[:16]}


def check_read(stats: dict) -> None:
    """No usable input record at all (undecodable, not JSON, no text) is an error with the counts of
    why, before any mixing is tried (`record_sources.check_skips`)."""
    read = stats["steps"].get("read")
    if read is None or read["docs_out"]:
        return
    first = [f"{b['where']} ({b['reason']})" for b in stats["bad_input"][:1]]
    check_skips("curate input", 0, read["dropped"], first, 1.0, "")


def curate(
    cfg: CurateConfig,
    out_dir: str | os.PathLike,
    *,
    inputs: Sequence[str | os.PathLike] | None = None,
    seed: int = 0,
    extra_steps: Sequence[Step] = (),
) -> CurateResult:
    """Run curation; `inputs` default to `cfg.input.paths`. See the module docstring."""
    paths = list(inputs) if inputs is not None else list(cfg.input.paths)
    if not paths:
        raise FileNotFoundError("curate: no input paths (set curate.input.paths)")
    shards = list_shards(paths)
    counter = make_counter(cfg.mixing.tokenizer) if cfg.mixing is not None else None  # a bad path fails now
    steps, skipped = build_steps(cfg, extra_steps, seed)
    out = Path(out_dir)
    reader = ShardReader(cfg.input.text_key, cfg.input.id_key, cfg.input.default_source,
                         cfg.input.text_unit)
    if cfg.output.keep_dropped and not (cfg.pii.enabled and cfg.pii.redact_dropped):
        console.log("curate: dropped/ keeps the raw text of dropped documents, PII included "
                    "(pii.redact_dropped: true redacts it)")
    ex = cfg.executor
    common = dict(reader=reader, fmt=cfg.output.format, max_docs_per_file=cfg.output.max_docs_per_file,
                  batch_size=ex.batch_size, keep_dropped=cfg.output.keep_dropped, resume=ex.resume,
                  fingerprint=fingerprint(cfg, shards, steps), progress=ex.progress)
    if ex.backend == "ray":
        from .ray_executor import run_ray

        stats = run_ray(shards, steps, out, num_cpus=None if ex.ray_address else ex.workers,
                        address=ex.ray_address, **common)
    else:
        stats = run_local(shards, steps, out, workers=ex.workers, **common)
        # what each dedup level found (pairs, clusters, largest clusters), fitted in this process
        stats["global_steps"] = {s.name: s.report for s in steps if getattr(s, "report", None)}
    stats["skipped_steps"] = skipped
    stats["seed"] = seed
    stats["inputs"] = [str(p) for p in shards]
    write_json(out / "stats.json", stats)
    check_read(stats)
    files = [Path(p) for p in stats["outputs"]]
    mixture = None
    if cfg.mixing is not None:
        m = cfg.mixing
        mixture = mix(files, out / "mixed", weights=m.weights, token_budget=m.token_budget,
                      max_epochs=m.max_epochs, counter=counter, seed=seed,
                      truncate_last=m.truncate_last, fmt=cfg.output.format,
                      max_docs_per_file=cfg.output.max_docs_per_file)
        files = [Path(p) for p in mixture["outputs"]]
    return CurateResult(out, files, stats, mixture, skipped)


