"""Stage 5a: the reward model.

    STAGE                                 <run>/reward_model/model from the SFT model (resumes from
                                          its checkpoint; a finished model of the same run is reused)
    rm_pairs(rm_cfg, seed)                its data: `rm.data` files (any shape `prefs convert`
                                          reads), else the generated style set ("Let me explain. "
                                          + answer preferred, + fluency pairs), split by prompt
    score_file(scorer, path, out)         `llm-recipe rm score`: rewards added to each record
"""

from __future__ import annotations

import os

import numpy as np

from .. import console
from ..config import RMConfig
from ..demo.style import fluency_pairs, style_preference_pairs
from ..files import output_file, write_jsonl
from ..infer.reward import Scorer
from ..preference.converters import read_preference_files, record_to_pairs
from ..preference.records import (
    InvalidRecord,
    PreferencePair,
    SkipLog,
    check_prompt,
    check_response,
    iter_records,
    split_by_prompt,
)
from ..train.interrupt import StoppedEarly
from ..train.reward_model import run_reward_model
from ..train.run_folder import prepare_run, run_key
from .context import Artifacts, RunContext
from .contract import Stage


def rm_pairs(rc: RMConfig, seed: int) -> tuple[list[PreferencePair], list[PreferencePair], SkipLog | None, list]:
    """(train pairs, held-out pairs, read log, input files) for the reward model."""
    if rc.data:
        pairs, log = read_preference_files(rc.data)
        if rc.eval_data:
            held, held_log = read_preference_files(rc.eval_data)
            log.merge(held_log)
            return pairs, held, log, [*rc.data, *rc.eval_data]
        train, held = split_by_prompt(pairs, rc.eval_fraction, seed)
        return train, held, log, list(rc.data)
    pairs = style_preference_pairs(rc.synthetic_pairs, seed)
    if rc.fluency_pairs:
        pairs += fluency_pairs(rc.fluency_pairs, seed)
    train, held = split_by_prompt(pairs, rc.eval_fraction, seed)
    return train, held, None, []


def _base(ctx: RunContext) -> str:
    return ctx.require_start_model("rm", ctx.cfg.rm)


def _run_key(ctx: RunContext) -> dict:
    rc = ctx.cfg.rm
    return run_key(rc, seed=ctx.cfg.seed, inputs=[*(rc.data or []), *(rc.eval_data or [])], base=_base(ctx))


def key(ctx: RunContext) -> dict:
    return _run_key(ctx)


def run(ctx: RunContext) -> Artifacts:
    """Train the reward model from `rm.init_from` or the SFT model into <run>/reward_model."""
    cfg, rc = ctx.cfg, ctx.cfg.rm
    run_dir = ctx.out / "reward_model"
    if prepare_run(run_dir, _run_key(ctx), rc.resume, "rm"):
        return {"reward_model": str(run_dir / "model")}
    train, held, log, inputs = rm_pairs(rc, cfg.seed)
    if log is not None:
        log.check("reward model: preference data", rc.max_bad_records, "rm.max_bad_records")
    res = run_reward_model(base=_base(ctx), train_pairs=train, eval_pairs=held, cfg=rc, output_dir=run_dir,
                           seed=cfg.seed, read_log=log, inputs=inputs, full_config=cfg)
    if res.stopped_early:
        raise StoppedEarly(f"reward model training stopped at step {res.steps} (checkpoint saved); "
                           "run the same command again to resume")

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    console.log(f"reward model: held-out pairwise accuracy {pct(res.report['initial_eval_accuracy'])} -> "
                f"{pct(res.report['eval']['accuracy'])} ({len(held)} pairs, {res.steps} steps)")
    return {"reward_model": str(res.model_dir)}


STAGE = Stage("rm", run, key, lambda cfg: cfg.rm is not None, section="rm")


def score_file(scorer: Scorer, path: str | os.PathLike, out: str | os.PathLike, normalize: bool = True):
    """Score records of {"prompt", "response"} / {"prompt", "responses": [...]} / any pair shape
    (`preference.converters`: explicit or implicit prompt, text or conversational); writes each record with "reward(s)" added.
    Returns (records written, SkipLog); for pairs, the log's report includes pairwise accuracy."""
    out = output_file(out)  # a folder named like the output: said before the scoring, not after
    log = SkipLog()
    items: list[tuple[dict, object, list[str], str]] = []  # (record, prompt, responses, key for the rewards)
    for where, rec in iter_records([path], log, "input"):
        try:
            if "chosen" in rec and "rejected" in rec:  # any pair shape `prefs convert` reads (TRL's too)
                one = SkipLog()
                pairs = record_to_pairs(rec, where, one)
                if len(pairs) != 1:  # the converter counted why (or it was not one pair)
                    one.kept = 0
                    log.merge(one) if one.skipped else log.skip("not_one_pair", where)
                    continue
                prompt, resp, key = pairs[0].prompt, [pairs[0].chosen, pairs[0].rejected], "pair"
            else:
                prompt = check_prompt(rec.get("prompt"))
                if "responses" in rec and isinstance(rec["responses"], list):
                    resp, key = [check_response(r, "responses[]") for r in rec["responses"]], "rewards"
                elif "response" in rec:
                    resp, key = [check_response(rec["response"], "response")], "reward"
                else:
                    raise InvalidRecord("missing_field", "response, responses or chosen/rejected")
        except InvalidRecord as e:
            log.skip(e.reason, where, e.detail)
            continue
        items.append((rec, prompt, resp, key))
    if not items:  # an empty or unreadable file is an error with the counts, not "scored 0 records"
        log.check(f"rm score: {path}", 1.0, "")
    flat_p = [prompt for _, prompt, resp, _ in items for _ in resp]
    flat = scorer.score(flat_p, [r for _, _, resp, _ in items for r in resp], normalize) if flat_p else np.zeros(0)
    outs, i, correct, n_pairs = [], 0, 0, 0
    for rec, _, resp, key in items:
        vals = [float(v) for v in flat[i : i + len(resp)]]
        i += len(resp)
        if key == "pair":
            rec = {**rec, "reward_chosen": vals[0], "reward_rejected": vals[1]}
            correct += vals[0] > vals[1]
            n_pairs += 1
        else:
            rec = {**rec, key: vals if key == "rewards" else vals[0]}
        outs.append(rec)
        log.kept += 1
    write_jsonl(out, outs)
    return outs, log, (correct / n_pairs if n_pairs else None)
