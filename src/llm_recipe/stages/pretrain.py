"""Stage 2b: pretraining, then a few samples from the base model.

    stage_pretrain(cfg, files, tokenizer, out)   out/pretrain/model (resumes from its checkpoint;
                                                 skipped when the model is already there:
                                                 both only for the same settings, `run_folder`)
    stage_sample(cfg, model_dir, out)            out/samples.jsonl: continuations of `generate.prompts`
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import console, distributed
from ..config import RecipeConfig
from ..data.token_shards import TokenShards
from ..files import atomic_write
from ..infer.generate import generate_texts
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..train.interrupt import StoppedEarly
from ..train.pretrain import run_pretrain
from ..train.run_folder import prepare_run, run_key, tokenizer_hash
from ..train.shard_data import shard_inputs
from .tokens import stage_token_data


def stage_pretrain(cfg: RecipeConfig, files: list[Path], tokenizer, out: Path) -> Path:
    run_dir = out / "pretrain"
    token_data = stage_token_data(cfg, files, tokenizer, out)  # None: run_pretrain tokenizes `files`
    inputs = shard_inputs(TokenShards(token_data)) if token_data else files
    key = run_key(cfg.pretrain, seed=cfg.seed, inputs=inputs, base=cfg.model.name_or_path,
                  model=cfg.model.model_dump(mode="json"), tokenizer=tokenizer_hash(tokenizer))
    if prepare_run(run_dir, key, cfg.pretrain.resume, "pretrain"):
        return run_dir / "model"
    res = run_pretrain(data_files=files, tokenizer=tokenizer, model_cfg=cfg.model, cfg=cfg.pretrain,
                       output_dir=run_dir, seed=cfg.seed, resume=True, full_config=cfg,
                       token_data=token_data)
    if res.stopped_early:
        raise StoppedEarly(f"pretraining stopped at step {res.steps} (checkpoint saved in {run_dir / 'checkpoints'}); "
                           "run the same command again to resume")
    if res.final_eval_loss is None:  # one document: nothing held out
        console.log(f"pretrain: {res.steps} steps (no held-out document, no eval loss)")
    else:
        console.log(f"pretrain: eval loss {res.initial_eval_loss:.3f} -> {res.final_eval_loss:.3f} in {res.steps} steps")
    return res.model_dir


def stage_sample(cfg: RecipeConfig, model_dir: Path, out: Path) -> Path:
    return distributed.on_main(_sample, cfg, model_dir, out)


def _sample(cfg: RecipeConfig, model_dir: Path, out: Path) -> Path:
    compute = cfg.generate.compute
    model, tok = load_model(model_dir, compute), load_tokenizer(model_dir)
    with autocast(compute, model.device):
        outs = generate_texts(model, tok, cfg.generate.prompts, cfg.generate.sampling, seed=cfg.seed)
    path = out / "samples.jsonl"
    with atomic_write(path) as f:
        for p, o in zip(cfg.generate.prompts, outs, strict=True):
            f.write(json.dumps({"prompt": p, "completion": o}, ensure_ascii=False) + "\n")
            console.log(f"sample: {p!r} -> {o!r}")
    return path
