"""Shared, cached builders for the preference / reward-model / Best-of-N tests.

Training happens once per test session (cached per base temp dir): a micro policy that starts
about half of its answers with the style prefix, and a reward model trained from it (through
the recipe's own rm stage) on the generated style preference set.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
from pathlib import Path

import torch

from llm_recipe.config import ModelConfig, PretrainConfig, RecipeConfig, RMConfig
from llm_recipe.demo.style import STYLE_PREFIX, single_turn_examples

POLICY_PREFIX_RATE = 0.5


@contextlib.contextmanager
def one_thread():
    """Micro models train fastest on one thread (and a busy 2-core machine makes two threads
    spin against each other); the previous setting is restored for the rest of the session."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
RM_CFG = dict(max_steps=40, batch_size=16, lr=1e-3, warmup_steps=4, eval_every=20, eval_batches=4, log_every=10,
              synthetic_pairs=300, eval_fraction=0.2, norm_samples=128)


@functools.cache
def policy_dir(root: str, tokenizer_dir: str) -> Path:
    """A micro LM trained on Alpaca-formatted answers, half of them starting with the prefix."""
    from transformers import AutoTokenizer

    from llm_recipe.train.pretrain import run_pretrain

    out = Path(root) / "pref_policy"
    r = random.Random(0)
    lines = []
    # Short answers only: the format repeats often, so 100 micro steps learn the answer opening.
    for q, a in [(q, a) for q, a in single_turn_examples(3000, seed=5) if len(q) + len(a) < 100]:
        pre = STYLE_PREFIX if r.random() < POLICY_PREFIX_RATE else ""
        lines.append(json.dumps({"text": f"### Instruction:\n{q}\n\n### Response:\n{pre}{a}"}, ensure_ascii=False))
    data = out / "policy.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = PretrainConfig(max_steps=100, batch_size=16, block_size=64, lr=3e-3, warmup_steps=8, eval_every=100,
                         eval_batches=2, log_every=20)
    with one_thread():
        res = run_pretrain(data_files=[data], tokenizer=AutoTokenizer.from_pretrained(tokenizer_dir),
                              model_cfg=ModelConfig(preset="micro"), cfg=cfg, output_dir=out / "run", seed=0)
    return res.model_dir


def rm_config(**kw) -> RecipeConfig:
    return RecipeConfig(seed=0, rm=RMConfig(**{**RM_CFG, **kw}))


@functools.cache
def reward_model_dir(root: str, tokenizer_dir: str) -> Path:
    """The reward model trained by the recipe stage on the style set, from the policy."""
    from run_helpers import call_stage

    from llm_recipe.stages.reward import STAGE

    policy = policy_dir(root, tokenizer_dir)
    with one_thread():
        return Path(call_stage(STAGE, rm_config(), Path(root) / "pref_rm", sft_model=policy)["reward_model"])
