"""What a training folder holds, and whether a rerun may use it: one check every training stage
calls before it skips or resumes.

    out/run_key.json        what the run in this folder computes: the stage section (minus the
                            fields in RESUMABLE), the seed, the sha256 of every input file and of
                            the model it starts from
    out/checkpoints/        resumable states (`checkpoint`)
    out/model/complete.json the final model is written into `model.tmp/`, the marker last, then
                            renamed: a folder without its marker (a kill mid-save) is no model

`prepare_run` says whether the finished model is there (skip the stage). A finished model or a
checkpoint of a run with another key is not reused silently: it is an error that names the
differing fields, unless the section's `resume` says `fresh` (delete and start over, `--fresh`)
or `force` (use what is there anyway: a deliberate change, such as a longer run).

Policy: a resumed run must compute what the first attempt would have. Only fields that change
where and how often a run reports and checkpoints (RESUMABLE) may differ. `max_steps`/`epochs`/
`iterations` may not: the LR schedule is a function of the step *and* the run's length, so a
longer run is another run (`resume=force` continues under the new schedule, and run_key.json lists
what changed). `max_bad_records` may change too: it checks the data, it does not change what is
computed from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from .. import distributed
from ..files import MARKER, lock_folder, read_json, write_json
from ..run_keys import ResumeMismatch, differences, mismatch, model_key
from ..run_keys import run_key as _run_key
from .checkpoint import latest_checkpoint

__all__ = ["KEY_FILE", "RESUMABLE", "ResumeMismatch", "model_key", "prepare_run", "run_key", "tokenizer_hash"]

KEY_FILE = "run_key.json"
# Where and how often a run reports and checkpoints, and where it computes: not what it computes.
RESUMABLE = {"resume", "max_bad_records", "save_every", "log_every", "eval_every", "eval_batches", "report_to", "compute.device",
             "compute.num_threads", "compute.gradient_checkpointing", "compute.fsdp", "compute.compile",
             "tracking.project", "tracking.run_name", "lora.save"}


def run_key(section, *, seed: int, inputs=(), base=None, **extra) -> dict:
    """What a training run computes: its section (minus RESUMABLE), seed, input hashes, starting model."""
    return _run_key(section, seed=seed, inputs=inputs, base=base, ignore=RESUMABLE, **extra)


def tokenizer_hash(tokenizer) -> str:
    """sha256 of a tokenizer's vocabulary and special tokens (a retrained tokenizer is another input)."""
    vocab = json.dumps([sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens])
    return hashlib.sha256(vocab.encode()).hexdigest()


def prepare_run(out: str | os.PathLike, key: dict, resume: str, stage: str) -> bool:
    """Before a training stage skips or resumes: True when `out/model` is this run's finished model.
    A finished model or checkpoint of another run: `ResumeMismatch` (resume=auto), used anyway
    (force) or deleted (fresh). A model folder without its marker (a torn save) is not finished."""
    out = Path(out)
    return distributed.on_main(_prepare, out, key, resume, stage)


def _prepare(out: Path, key: dict, resume: str, stage: str) -> bool:
    lock_folder(out)  # before anything is deleted: a second run into this folder stops here
    model = out / "model"
    if resume == "fresh":
        for sub in ("checkpoints", "model", "model.tmp"):
            shutil.rmtree(out / sub, ignore_errors=True)
    done = (model / MARKER).exists()  # without it (a kill mid-save): trained again, replaced when complete
    stored = out / KEY_FILE
    if (done or latest_checkpoint(out)) and stored.exists():
        old = read_json(stored)
        diff = differences(old, key)
        if diff and resume != "force":
            raise mismatch(out, "a finished model" if done else "a checkpoint", old, key,
                           f"rerun with --fresh (or --set {stage}.resume=fresh) to start over, or "
                           f"--set {stage}.resume=force to keep it")
        if diff:
            key = {**key, "changed_on_resume": diff}
    if not done:  # a finished model keeps the key it was trained with
        write_json(stored, key)
    return done
