"""The stage contract: every stage is `run(ctx) -> Artifacts`, called through `run_stage`, which
gives every stage the same lock, the same completion marker and the same timing.

    Stage(name, run, key, enabled)    what a stage module exports (`STAGE`)
    run_stage(ctx, stage)             lock the run folder; if `<run>/stages/<name>.json` holds this
                                      stage's key (its settings, seed, input files and input models by
                                      content: `key(ctx)`) and its artifacts still exist, the stage is
                                      done: its artifacts are reused. Otherwise the marker is removed,
                                      the stage runs, and the marker is written last (atomically).

So no stage's outputs are taken as done unless a finished run with the same settings *and* the same
input artifacts wrote them: a retrained SFT model changes the key of everything downstream of it
(its samples and format-following report, DPO, RL, Best-of-N, the evaluation). Training stages keep
their own finer resume (`train.run_folder.prepare_run`: checkpoints, a finished model reused, a
mismatch named); `SECTION.resume: fresh` and `ctx.force` skip the marker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import console, distributed
from ..config import RecipeConfig
from ..files import lock_folder, read_json, write_json
from ..run_keys import differences, run_key
from ..train.run_folder import RESUMABLE
from .context import MARKERS, Artifacts, RunContext, exists, in_folder, relative_to_folder


@dataclass(frozen=True)
class Stage:
    name: str  # its folder's name in summary.json's seconds, and its marker's
    run: Callable[[RunContext], Artifacts]
    key: Callable[[RunContext], dict]  # what its outputs depend on (`stage_key`)
    enabled: Callable[[RecipeConfig], bool]  # whether a recipe runs it (it has the stage's section)
    section: str | None = None  # the config section whose `resume: fresh` reruns it

    def fresh(self, cfg: RecipeConfig) -> bool:
        section = getattr(cfg, self.section, None) if self.section else None
        return getattr(section, "resume", None) == "fresh"


def stage_key(ctx: RunContext, section: Any, *, inputs=(), models: dict[str, str | None] | None = None,
              **extra: Any) -> dict:
    """A stage's key: its section (minus where and how often it reports), the run's seed, its input
    files by content and its input models by content (`run_keys.run_key`)."""
    from ..run_keys import model_key

    shown = {name: model_key(path) if path else None for name, path in (models or {}).items()}
    return run_key(section if section is not None else {}, seed=ctx.cfg.seed, inputs=inputs, ignore=RESUMABLE,
                   models=shown, **extra)


def _marker(ctx: RunContext, stage: Stage):
    return ctx.out / MARKERS / f"{stage.name}.json"


def _done(ctx: RunContext, stage: Stage, key: dict) -> Artifacts | None:
    """The artifacts of this stage's finished run with the same key, else None (main process)."""
    path = _marker(ctx, stage)
    if ctx.force or stage.fresh(ctx.cfg) or not path.exists():
        return None
    try:
        old = read_json(path)
    except ValueError:  # a hand-broken marker: the stage runs again
        return None
    made = in_folder(old.get("artifacts", {}), ctx.out)
    changed = differences(old.get("key") or {}, key)
    if changed or not exists_all(made):
        if changed:
            console.log(f"stage {stage.name}: settings or inputs changed since its last run "
                        f"({', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}): running it again")
        path.unlink()
        return None
    return made


def exists_all(artifacts: Artifacts) -> bool:
    return all(exists(v) for v in artifacts.values())


def run_stage(ctx: RunContext, stage: Stage) -> Artifacts:
    """Run `stage` (or reuse its finished run, see the module docstring); its artifacts are added to
    `ctx` and returned."""
    t0 = time.perf_counter()
    console.log(f"stage {stage.name} ...")
    if distributed.is_main():
        lock_folder(ctx.out)  # one run per folder, whichever command it is
    key = distributed.on_main(stage.key, ctx)
    done = distributed.on_main(_done, ctx, stage, key)
    if done is not None:
        console.log(f"stage {stage.name}: done (same settings and inputs as its finished run)")
        made = done
    else:
        made = stage.run(ctx)
        if distributed.is_main():
            write_json(_marker(ctx, stage), {"stage": stage.name, "key": key,
                                             "artifacts": relative_to_folder(made, ctx.out),
                                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        distributed.barrier()
    ctx.add(made)
    ctx.timings[stage.name] = round(time.perf_counter() - t0, 1)
    return made
