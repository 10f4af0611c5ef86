"""`curate()`: a `curate:` config section -> steps -> local executor -> (optional) mixing.

    from llm_recipe.data.curate import curate
    result = curate(cfg.curate, "runs/x/curated", inputs=["data/raw"], seed=0)
    result.files      # curated (or, with `mixing`, mixed) shards, ready for tokenizer training
    result.stats      # the stats.json dict: per-step in/out/drops/modifications

Step order (cheap first, so expensive rules see fewer docs): extract (web pages only) ->
cp932_mojibake -> normalize -> blocklist -> bbs_comments -> ads -> ng_words -> site_boilerplate
(global) -> language -> min_length -> short_lines -> char_ratios -> gopher_quality ->
gopher_repetition -> hiragana_share -> decontaminate -> dedup (global) -> model-based quality
filters -> [extra_steps] -> pii -> ner [-> tokenize]. Dedup runs after the filters (fewer docs to hash) and
before PII (redaction would make near-duplicates look different); decontamination runs on the
normalized text, before dedup and mixing.

With `tokenize:` (and a tokenizer) the curated shards are then tokenized into `out_dir/tokens/`
(`data.tokenize`: binary token shards, on the same executor); `mixing:` is then applied when
pretraining samples them instead of being copied into `mixed/`.

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
from ..run_keys import run_key
from .decontam import Decontaminate
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
from .tokenize import tokenize_corpus
from .tokens import make_counter
from .web.boilerplate import SiteBoilerplate
from .web.extract import Extract
from .web.filters import AdBoilerplate, BBSComments, NGWords

_WEB_FILTERS = [("bbs_comments", BBSComments), ("ads", AdBoilerplate), ("ng_words", NGWords),
                ("site_boilerplate", SiteBoilerplate)]
_FILTERS = [
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
    tokens: dict | None = None  # `tokenize`: the token shards' stats.json (tokens per source, mixture)


def build_steps(cfg: CurateConfig, extra_steps: Sequence[Step] = (), seed: int = 0) -> tuple[list[Step], list[dict]]:
    """The configured steps in pipeline order, and the optional steps left out (with why)."""
    steps: list[Step] = []
    skipped: list[dict] = []
    if cfg.web.extract.enabled:
        steps.append(Extract(cfg.web.extract))
    if cfg.cp932_mojibake.enabled:  # before normalize: NFKC would break the cp932 round trip
        steps.append(Cp932Mojibake(cfg.cp932_mojibake))
    if cfg.normalize.enabled:
        steps.append(Normalize(cfg.normalize))
    if cfg.blocklist.enabled:
        steps.append(DomainBlocklist(cfg.blocklist))
    steps.extend(cls(getattr(cfg.web, key)) for key, cls in _WEB_FILTERS if getattr(cfg.web, key).enabled)
    steps.extend(cls(getattr(cfg, key)) for key, cls in _FILTERS if getattr(cfg, key).enabled)
    if cfg.decontaminate.enabled:
        steps.append(Decontaminate(cfg.decontaminate))
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


def fingerprint(cfg: CurateConfig, shards: list[Path], steps: Sequence[Step], seed: int = 0) -> dict[str, Any]:
    """What identifies a run for resume (`run_keys.run_key`): every config field (so a mismatch names
    the changed ones) but where and how it runs, the seed, the inputs by content, and a hash of the
    step objects (settings not in the config)."""
    conf = cfg.model_dump(mode="json", exclude={"executor": {"workers", "progress", "resume"}})
    steps_hash = hashlib.sha256(repr([repr(s) for s in steps]).encode()).hexdigest()[:16]
    return run_key(conf, seed=seed, inputs=shards, steps=steps_hash)


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
                  fingerprint=fingerprint(cfg, shards, steps, seed), progress=ex.progress)
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
    files = [Path(p) for p in stats["outputs"]]
    mixture = None
    if cfg.tokenize is not None:  # token shards; a mixture is applied by sampling them, not copied
        return CurateResult(out, files, stats, None, skipped, _tokenize(cfg, files, out, seed))
    if cfg.mixing is not None:
        m = cfg.mixing
        mixture = mix(files, out / "mixed", weights=m.weights, token_budget=m.token_budget,
                      max_epochs=m.max_epochs, counter=counter, seed=seed,
                      truncate_last=m.truncate_last, fmt=cfg.output.format,
                      max_docs_per_file=cfg.output.max_docs_per_file)
        files = [Path(p) for p in mixture["outputs"]]
    return CurateResult(out, files, stats, mixture, skipped)


def _tokenize(cfg: CurateConfig, files: list[Path], out: Path, seed: int) -> dict | None:
    t = cfg.tokenize
    if not t.tokenizer:
        console.log("curate: tokenization runs with the recipe's tokenizer when pretraining starts "
                    "(set curate.tokenize.tokenizer to tokenize now)")
        return None
    return tokenize_corpus(files, out / "tokens", t.tokenizer, val_fraction=t.val_fraction, seed=seed,
                           batch_size=t.batch_size, executor=cfg.executor, mixing=cfg.mixing)


