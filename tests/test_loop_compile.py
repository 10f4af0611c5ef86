"""`compute.compile`: the shared loop trains a torch.compile'd model to the same losses and weights as
the eager one, and saves it under the same parameter names (a checkpoint loads either way)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch


@pytest.mark.slow
def test_compiled_training_equals_eager(tmp_path, tokenizer):
    from llm_recipe.config import ComputeConfig, PretrainConfig
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.pretrain import CausalLMObjective

    rng = np.random.default_rng(0)
    blocks = [rng.integers(5, 300, 32) for _ in range(24)]
    out = {}
    for compiled in (False, True):
        cfg = PretrainConfig(max_steps=4, batch_size=8, lr=1e-3, warmup_steps=0, log_every=1, eval_every=100,
                             compute=ComputeConfig(compile=compiled))
        d = tmp_path / str(compiled)
        trainer = Trainer(build_preset_model("micro", tokenizer, seed=0), CausalLMObjective(), blocks, cfg, d)
        trainer.fit()
        trainer.save_model(d / "model")
        out[compiled] = ([json.loads(ln)["loss"] for ln in (d / "metrics.jsonl").read_text().splitlines()],
                         trainer.unwrapped_model().state_dict())
    (eager, w_eager), (comp, w_comp) = out[False], out[True]
    assert len(eager) == 4 and comp == pytest.approx(eager, rel=1e-4)
    assert list(w_comp) == list(w_eager)  # no `_orig_mod.` prefix: checkpoints and saved models load as before
    for k in w_eager:
        torch.testing.assert_close(w_comp[k], w_eager[k], rtol=1e-3, atol=1e-5)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "True" / "model")  # the saved model loads
