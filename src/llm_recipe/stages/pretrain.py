"""Stage 2b: pretraining, then a few samples from the base model.

    PRETRAIN   <run>/pretrain/model (resumes from its checkpoint; a finished model of the same
               settings is reused: `train.run_folder`)
    SAMPLE     <run>/samples.jsonl: continuations of `generate.prompts` from the pretrained model
"""

from __future__ import annotations

import json

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
from . import tokenizer as tokenizer_stage
from .context import Artifacts, RunContext
from .contract import Stage, stage_key


def _inputs(ctx: RunContext) -> list:
    token_data = ctx.artifacts.get("token_data")
    return shard_inputs(TokenShards(token_data)) if token_data else ctx.artifacts["corpus_files"]


def _run_key(ctx: RunContext, tokenizer) -> dict:
    cfg = ctx.cfg
    return run_key(cfg.pretrain, seed=cfg.seed, inputs=_inputs(ctx), base=cfg.model.name_or_path,
                   model=cfg.model.model_dump(mode="json"), tokenizer=tokenizer_hash(tokenizer))


def key(ctx: RunContext) -> dict:
    return _run_key(ctx, tokenizer_stage.load(ctx))


def run(ctx: RunContext) -> Artifacts:
    cfg, run_dir = ctx.cfg, ctx.out / "pretrain"
    tokenizer = tokenizer_stage.load(ctx)
    arts = {"pretrained_model": str(run_dir / "model"), "pretrain_metrics": str(run_dir / "metrics.jsonl")}
    if prepare_run(run_dir, _run_key(ctx, tokenizer), cfg.pretrain.resume, "pretrain"):
        return arts
    res = run_pretrain(data_files=ctx.artifacts.get("corpus_files") or [], tokenizer=tokenizer, model_cfg=cfg.model,
                       cfg=cfg.pretrain, output_dir=run_dir, seed=cfg.seed, resume=True, full_config=cfg,
                       token_data=ctx.artifacts.get("token_data"))
    if res.stopped_early:
        raise StoppedEarly(f"pretraining stopped at step {res.steps} (checkpoint saved in {run_dir / 'checkpoints'}); "
                           "run the same command again to resume")
    if res.final_eval_loss is None:  # one document: nothing held out
        console.log(f"pretrain: {res.steps} steps (no held-out document, no eval loss)")
    else:
        console.log(f"pretrain: eval loss {res.initial_eval_loss:.3f} -> {res.final_eval_loss:.3f} in {res.steps} steps")
    return arts


def sample_key(ctx: RunContext) -> dict:
    return stage_key(ctx, ctx.cfg.generate, models={"model": ctx.artifacts["pretrained_model"]})


def sample(ctx: RunContext) -> Artifacts:
    return {"samples": str(distributed.on_main(_sample, ctx.cfg, ctx.artifacts["pretrained_model"], ctx.out))}


def _sample(cfg: RecipeConfig, model_dir, out):
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


STAGE = Stage("pretrain", run, key, lambda cfg: cfg.pretrain is not None, section="pretrain")
SAMPLE = Stage("sample", sample, sample_key, lambda cfg: cfg.pretrain is not None)
