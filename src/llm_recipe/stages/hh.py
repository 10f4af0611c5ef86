"""The helpful-harmless data of a run: the HH set's prompts answered once by the starting model.

    hh_answers(cfg, model_dir, run_dir)    RUN/hh/answers.jsonl (the model's own greedy answers) and
                                           RUN/hh/key.json (written last: model, set sha256, sampling,
                                           seed); reused while the key matches, remade otherwise
    hh_sft_data(cfg, model_dir, run_dir)   `sft.data: hh`: (records, skip log, inputs for the run key)
    hh_dpo_data(cfg, model_dir, run_dir)   `dpo.data: hh`: (pairs, skip log, inputs for the run key)
    starting_model(ctx)                    whose own answers: `hh.answers_from`, else the model SFT
                                           starts from (-m first; the same one for SFT and DPO, so both
                                           read one answers file)

The data itself is built by `preference.hh`; whether an own answer refuses is decided by the eval
layer's detector (`eval.refusal.refusal_labels`, method `hh.refusal_detector`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import console, distributed
from ..config import HHConfig, RecipeConfig
from ..eval.refusal import refusal_labels
from ..eval.sets import BUNDLED, load_safety_set
from ..files import write_json, write_jsonl
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..preference.hh import BUNDLED as HH_BUNDLED
from ..preference.hh import HHSet, hh_pairs, hh_sft_records, load_hh_set, ngram_overlap, own_answers
from ..preference.records import SkipLog


def starting_model(ctx) -> str:
    """Whose own answers the HH data pairs with refusals: `hh.answers_from`, else the model SFT starts
    from (`RunContext.start_model`: -m, sft.init_from, the run's pretrained model, model.name_or_path),
    so the SFT and DPO stages of a run read one answers file and `dpo -m X` pairs X's own answers."""
    hcfg = ctx.cfg.hh or HHConfig()
    return str(hcfg.answers_from) if hcfg.answers_from else ctx.require_start_model("sft", ctx.cfg.sft)


def hh_set_path(cfg: RecipeConfig) -> str:
    return str((cfg.hh or HHConfig()).set or HH_BUNDLED)


def hh_key(cfg: RecipeConfig) -> dict:
    """What a stage key holds of the `hh:` section (the set file itself goes in by content)."""
    return (cfg.hh or HHConfig()).model_dump(mode="json")


def _generate(model_dir: str, hh: HHSet, hcfg: HHConfig, seed: int) -> list[str]:
    model, tok = load_model(model_dir, hcfg.compute), load_tokenizer(model_dir)
    with autocast(hcfg.compute, model.device):
        return own_answers(model, tok, hh.items, hcfg.sampling, seed)


def hh_answers(cfg: RecipeConfig, model_dir: str | os.PathLike, run_dir: str | os.PathLike) -> tuple[HHSet, list[str], Path]:
    hcfg = cfg.hh or HHConfig()
    hh = load_hh_set(hcfg.set)
    out = Path(run_dir) / "hh"
    path, key_path = out / "answers.jsonl", out / "key.json"
    key = {"model": str(model_dir), "set": hh.describe(), "sampling": hcfg.sampling.model_dump(), "seed": cfg.seed}
    if key_path.is_file() and json.loads(key_path.read_text(encoding="utf-8")) == key:
        recs = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        return hh, [r["answer"] for r in recs], path
    console.log(f"hh: answering {len(hh.items)} prompts with {model_dir} (its own answers) ...")
    answers = distributed.on_main(_generate, str(model_dir), hh, hcfg, cfg.seed)
    if distributed.is_main():
        key_path.unlink(missing_ok=True)  # the key is written last: an interrupted write is never reused
        write_jsonl(path, ({"id": it.id, "kind": it.kind, "prompt": it.prompt, "answer": a}
                           for it, a in zip(hh.items, answers, strict=True)))
        write_json(key_path, key)
    distributed.barrier()
    return hh, answers, path


def _report(run_dir, part: str, log: SkipLog, hh: HHSet) -> None:
    """RUN/hh/data_report.json: what each use of the set kept and skipped, and how far the set is from
    the eval prompts (the largest share of a training prompt's 12-character n-grams in one eval prompt)."""
    if not distributed.is_main():
        return
    path = Path(run_dir) / "hh" / "data_report.json"
    rep = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    evals = [it.prompt for it in load_safety_set().items]
    evals += [json.loads(ln)["prompt"] for ln in BUNDLED["helpful"].read_text(encoding="utf-8").splitlines() if ln]
    rep[part] = log.to_json()
    rep["set"] = hh.describe()
    rep["max_ngram_overlap_with_eval"] = max(ngram_overlap([it.prompt for it in hh.items], evals), default=0.0)
    write_json(path, rep)


def _refuses(answers: list[str], method: str):
    refused = {a: lab != "compliance" for a, lab in zip(answers, refusal_labels(answers, method), strict=True)}
    return lambda a: refused[a]


def hh_sft_data(cfg: RecipeConfig, model_dir, run_dir) -> tuple[list[tuple[str, dict]], SkipLog, list[str]]:
    hh, answers, path = hh_answers(cfg, model_dir, run_dir)
    log = SkipLog()
    recs = hh_sft_records(hh.items, answers, _refuses(answers, (cfg.hh or HHConfig()).refusal_detector), log)
    console.log(f"hh: {len(recs)} SFT records ({log.total_skipped} skipped: {dict(log.skipped)})")
    _report(run_dir, "sft", log, hh)
    return recs, log, [hh.path, str(path)]


def hh_dpo_data(cfg: RecipeConfig, model_dir, run_dir) -> tuple[list, SkipLog, list[str]]:
    hcfg = cfg.hh or HHConfig()
    hh, answers, path = hh_answers(cfg, model_dir, run_dir)
    log = SkipLog()
    pairs = hh_pairs(hh.items, answers, _refuses(answers, hcfg.refusal_detector), log, kinds=hcfg.dpo_kinds)
    console.log(f"hh: {len(pairs)} DPO pairs ({log.total_skipped} skipped: {dict(log.skipped)})")
    _report(run_dir, "dpo", log, hh)
    return pairs, log, [hh.path, str(path)]
