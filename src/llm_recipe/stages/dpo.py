"""Stage 6: DPO, and the reference demo: teach the SFT model to begin every answer with
"Let me explain. " while keeping what it says.

    stage_dpo(cfg, sft_model_dir, out)   DPO from the SFT model into out/dpo/ (skipped when done,
                                         resumes from its checkpoint). Data: `dpo.data` files, or
                                         'style': pairs built from the SFT data (`demo.style`);
                                         then SFT and DPO answers on held-out prompts compared
                                         (`eval.style`, `dpo/style_report.json`)
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import console, distributed
from ..config import DPOConfig, RecipeConfig, SamplingConfig, SFTConfig
from ..demo.style import restyle_with_answers, style_pairs_from_sft
from ..eval.style import compare_style
from ..files import write_json, write_jsonl
from ..infer.generate import generate_chat
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..preference.converters import read_preference_files, read_unpaired_files
from ..preference.records import split_by_prompt
from ..train.dpo import run_dpo
from ..train.interrupt import StoppedEarly
from ..train.kto import with_mismatched_completions
from ..train.run_folder import prepare_run, run_key


def stage_dpo(cfg: RecipeConfig, sft_model_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """DPO from the SFT model into `out/dpo/`; with the style data, compare SFT and DPO answers on
    held-out prompts (`dpo/style_report.json`) and print both success rates. Skipped when done."""
    dcfg = cfg.dpo or DPOConfig()
    run_dir = Path(out) / "dpo"
    model_dir = run_dir / "model"
    style = dcfg.data == "style"
    init = dcfg.init_from or str(sft_model_dir)
    key = run_key(dcfg, seed=cfg.seed, inputs=[] if style else [*dcfg.data, *(dcfg.eval_data or [])], base=init)
    done = prepare_run(run_dir, key, dcfg.resume, "dpo")
    if done and (not style or (run_dir / "style_report.json").exists()):
        return model_dir
    if style:
        data = style_pairs_from_sft(cfg.sft or SFTConfig(), dcfg, cfg.seed)
        if dcfg.style_answers == "model":  # the policy's own answers (main process), then the same rule
            answers = distributed.on_main(_greedy_answers, init, [p.prompt for p in data.train + data.eval], dcfg)
            restyled = restyle_with_answers(data.train + data.eval, answers, dcfg.style_prefix, data.log)
            data.train, data.eval = split_by_prompt(restyled, dcfg.eval_fraction, cfg.seed)
        if distributed.is_main():
            write_jsonl(run_dir / "style_pairs.jsonl", (p.to_json() for p in data.train + data.eval))
        train, evals, log, inputs = data.train, data.eval, data.log, []
    else:
        if dcfg.loss_type == "kto":  # thumbs up/down records as they are (pairs are unpaired)
            records, log = read_unpaired_files(dcfg.data)
            pairs = with_mismatched_completions(records)
        else:
            pairs, log = read_preference_files(dcfg.data)
        if dcfg.eval_data:
            evals, eval_log = read_preference_files(dcfg.eval_data)
            log.merge(eval_log)
            train = pairs
        else:
            train, evals = split_by_prompt(pairs, dcfg.eval_fraction, cfg.seed)
        inputs = [*dcfg.data, *(dcfg.eval_data or [])]
        log.check("dpo: preference data", dcfg.max_bad_records, "dpo.max_bad_records")
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
        rep = distributed.on_main(compare_style, init, model_dir, data.held_out_prompts, dcfg.style_prefix,
                                  dcfg.max_new_tokens, cfg.seed, compute=dcfg.compute,
                                  answer_keys=data.held_out_keys)
        write_json(run_dir / "style_report.json", rep)
        console.log(f"dpo: held-out answers starting with {dcfg.style_prefix.strip()!r}: SFT {rep['sft_rate']:.0%} -> "
             f"DPO {rep['dpo_rate']:.0%} ({rep['prompts']} prompts); content kept (ROUGE-L vs SFT answer) "
             f"{rep['overlap_mean']:.2f}" + (f"; still correct where SFT was: {rep['still_correct']:.0%}"
                                              if rep.get("still_correct") is not None else ""))
    return model_dir


def _greedy_answers(model_dir, prompts: list, dcfg: DPOConfig) -> list[str]:
    model, tok = load_model(model_dir, dcfg.compute), load_tokenizer(model_dir)
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=dcfg.max_new_tokens)
    with autocast(dcfg.compute, model.device):
        return [g.text for g in generate_chat(model, tok, prompts, greedy, seed=0)]
