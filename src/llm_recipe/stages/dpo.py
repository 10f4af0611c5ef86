"""Stage 6: DPO, and the reference demo: teach the SFT model to begin every answer with
"Let me explain. " while keeping what it says.

    STAGE   DPO from the starting model (`RunContext.start_model`: the SFT model) into <run>/dpo/
            (resumes from its checkpoint; a finished model of the same run is reused). Data:
            `dpo.data` files, or 'style': pairs built from the SFT split (`train.style_data`); then
            SFT and DPO answers on held-out prompts compared (`eval.style`, `dpo/style_report.json`)
"""

from __future__ import annotations

from .. import console, distributed
from ..config import DPOConfig, SamplingConfig, SFTConfig
from ..eval.style import compare_style
from ..files import write_json, write_jsonl
from ..infer.generate import generate_chat
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..preference.converters import read_preference_files, read_unpaired_files
from ..preference.records import split_by_prompt
from ..train.dpo import loss_spec, run_dpo
from ..train.interrupt import StoppedEarly
from ..train.kto import with_mismatched_completions
from ..train.run_folder import prepare_run, run_key
from ..train.style_data import StyleData, restyle_with_answers, style_pairs_from_sft
from .context import Artifacts, RunContext
from .contract import Stage, stage_key
from .hh import hh_dpo_data, hh_key, hh_set_path, starting_model


def _init(ctx: RunContext) -> str:
    return ctx.require_start_model("dpo", ctx.cfg.dpo)


def _inputs(ctx: RunContext) -> list:
    dcfg = ctx.cfg.dpo
    if dcfg.data in ("style", "hh"):
        return [hh_set_path(ctx.cfg)] if dcfg.data == "hh" else []
    return [*dcfg.data, *(dcfg.eval_data or [])]


def key(ctx: RunContext) -> dict:
    dcfg = ctx.cfg.dpo
    style, hh = dcfg.data == "style", dcfg.data == "hh"
    return stage_key(ctx, {"dpo": run_key(dcfg, seed=ctx.cfg.seed)["config"],
                           "sft": (ctx.cfg.sft or SFTConfig()).model_dump(mode="json") if style else None,
                           "hh": hh_key(ctx.cfg) if hh else None},
                     inputs=_inputs(ctx), models={"init": _init(ctx), **({"answers": starting_model(ctx)} if hh else {})})


def run(ctx: RunContext) -> Artifacts:
    """DPO from the starting model into <run>/dpo/; with the style data, compare its answers and the
    starting model's on held-out prompts (`dpo/style_report.json`) and print both success rates."""
    cfg, dcfg = ctx.cfg, ctx.cfg.dpo
    run_dir = ctx.out / "dpo"
    init = _init(ctx)
    style, hh = dcfg.data == "style", dcfg.data == "hh"
    inputs = _inputs(ctx)
    if hh:  # refusal over the starting model's own answer to a harmful request; own answer over a refusal else
        pairs, log, inputs = hh_dpo_data(cfg, starting_model(ctx), ctx.out)
    done = prepare_run(run_dir, run_key(dcfg, seed=cfg.seed, inputs=inputs, base=init), dcfg.resume, "dpo")
    if style:
        data = _style_data(ctx, init)
        train, evals, log = data.train, data.eval, data.log
    elif hh:
        train, evals = _hh_pairs(ctx, pairs, log)
    elif not done:
        train, evals, log = _file_pairs(dcfg, cfg.seed)
    if not done:
        res = run_dpo(init=init, train_pairs=train, eval_pairs=evals, cfg=dcfg, output_dir=run_dir, seed=cfg.seed,
                      read_log=log, inputs=inputs, full_config=cfg)
        if res.stopped_early:
            raise StoppedEarly(f"DPO stopped at step {res.steps} (checkpoint saved); run the same command again to resume")
        first, last = res.initial_eval, res.final_eval
        if last:
            console.log(f"dpo: eval loss {first.get('eval_loss', float('nan')):.3f} -> {last['eval_loss']:.3f}, "
                        f"reward accuracy {first.get('eval_reward_accuracy', 0):.2f} -> {last['eval_reward_accuracy']:.2f}")
    if style:
        _compare_style(ctx, init, data, run_dir)
    return {"dpo_model": str(run_dir / "model")}


def _style_data(ctx: RunContext, init: str) -> StyleData:
    """The style pairs from the SFT split; with `style_answers: model`, the policy's own answers
    restyled (main process). Written to dpo/style_pairs.jsonl."""
    dcfg = ctx.cfg.dpo
    data = style_pairs_from_sft(ctx.sft_split(default=SFTConfig()), dcfg, ctx.cfg.seed)  # the bundled set without sft:
    if dcfg.style_answers == "model":  # the policy's own answers (main process), then the same rule
        answers = distributed.on_main(_greedy_answers, init, [p.prompt for p in data.train + data.eval], dcfg)
        restyled = restyle_with_answers(data.train + data.eval, answers, dcfg.style_prefix, data.log)
        data.train, data.eval = split_by_prompt(restyled, dcfg.eval_fraction, ctx.cfg.seed)
    if distributed.is_main():
        write_jsonl(ctx.out / "dpo" / "style_pairs.jsonl", (p.to_json() for p in data.train + data.eval))
    return data


def _hh_pairs(ctx: RunContext, pairs: list, log) -> tuple[list, list]:
    """The HH pairs (written to dpo/hh_pairs.jsonl), split by prompt. Skips are the model's own answers
    that cannot serve (counted in hh/data_report.json), not bad records: only no pairs at all is an error."""
    dcfg = ctx.cfg.dpo
    if not pairs:
        raise ValueError(f"dpo: no HH pairs ({log.total_skipped} skipped: {dict(log.skipped)}; see hh/data_report.json)")
    if distributed.is_main():
        write_jsonl(ctx.out / "dpo" / "hh_pairs.jsonl", (p.to_json() for p in pairs))
    return split_by_prompt(pairs, dcfg.eval_fraction, ctx.cfg.seed)


def _file_pairs(dcfg: DPOConfig, seed: int):
    """(train, eval, read log) of `dpo.data` files (unpaired thumbs-up/down records for KTO)."""
    if loss_spec(dcfg).data == "unpaired":  # thumbs up/down records as they are (pairs are unpaired)
        records, log = read_unpaired_files(dcfg.data)
        pairs = with_mismatched_completions(records)
    else:
        pairs, log = read_preference_files(dcfg.data)
    if dcfg.eval_data:
        evals, eval_log = read_preference_files(dcfg.eval_data)
        log.merge(eval_log)
        train = pairs
    else:
        train, evals = split_by_prompt(pairs, dcfg.eval_fraction, seed)
    log.check("dpo: preference data", dcfg.max_bad_records, "dpo.max_bad_records")
    return train, evals, log


def _compare_style(ctx: RunContext, init: str, data: StyleData, run_dir) -> None:
    dcfg = ctx.cfg.dpo
    rep = distributed.on_main(compare_style, init, run_dir / "model", data.held_out_prompts, dcfg.style_prefix,
                              dcfg.max_new_tokens, ctx.cfg.seed, compute=dcfg.compute, answer_keys=data.held_out_keys)
    write_json(run_dir / "style_report.json", rep)
    console.log(f"dpo: held-out answers starting with {dcfg.style_prefix.strip()!r}: SFT {rep['sft_rate']:.0%} -> "
                f"DPO {rep['dpo_rate']:.0%} ({rep['prompts']} prompts); content kept (ROUGE-L vs SFT answer) "
                f"{rep['overlap_mean']:.2f}" + (f"; still correct where SFT was: {rep['still_correct']:.0%}"
                                                 if rep.get("still_correct") is not None else ""))


def _greedy_answers(model_dir, prompts: list, dcfg: DPOConfig) -> list[str]:
    model, tok = load_model(model_dir, dcfg.compute), load_tokenizer(model_dir)
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=dcfg.max_new_tokens)
    with autocast(dcfg.compute, model.device):
        return [g.text for g in generate_chat(model, tok, prompts, greedy, seed=0)]


STAGE = Stage("dpo", run, key, lambda cfg: cfg.dpo is not None, section="dpo")
