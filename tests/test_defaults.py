"""Defaults that fit the model: a released model gets the field's fine-tuning values for whatever
the user did not set; epochs as an alternative to steps; a bare `sft` says which flag is missing."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import (
    ConfigError,
    DPOConfig,
    PretrainConfig,
    RMConfig,
    SFTConfig,
    load_config,
)
from llm_recipe.train.defaults import (
    PRESETS,
    apply_preset,
    fit_to_model,
    lr_warning,
    run_length_warning,
)

SMOL = 135_000_000  # SmolLM2-135M
MICRO = 400_000


def test_a_model_trained_here_keeps_the_section_defaults():
    cfg = SFTConfig()
    assert fit_to_model("sft", cfg, MICRO, lora=False) == (cfg, {})
    assert lr_warning("sft", cfg, MICRO, lora=False) is None


def test_a_released_model_gets_the_fields_values_where_the_user_chose_none():
    cfg, applied = fit_to_model("sft", SFTConfig(), SMOL, lora=False)
    assert applied == {"lr": 2e-5, "epochs": 3.0, "max_length": 1024, "warmup_steps": 0}
    assert (cfg.lr, cfg.epochs, cfg.max_length) == (2e-5, 3.0, 1024)
    _, applied = fit_to_model("sft", SFTConfig(lr=1e-4, max_steps=50), SMOL, lora=True)
    assert applied == {"max_length": 1024, "warmup_steps": 0}  # the user's lr and step count stay
    assert fit_to_model("dpo", DPOConfig(), SMOL, lora=True)[1]["lr"] == 5e-6
    assert fit_to_model("rm", RMConfig(), SMOL, lora=False)[1]["epochs"] == 1.0
    # from a recipe: what the YAML / --set named counts as chosen
    sft = load_config("tiny", {"sft.lr": 3e-3}).sft
    assert "lr" not in fit_to_model("sft", sft, SMOL, lora=False)[1]


def test_a_destructive_learning_rate_on_a_released_model_is_warned():
    msg = lr_warning("dpo", DPOConfig(lr=5e-4), SMOL, lora=False)
    assert "dpo.lr=0.0005 on a 135M-parameter model" in msg and "1e-06" in msg
    assert lr_warning("dpo", DPOConfig(lr=5e-4), SMOL, lora=True) is None


def test_epochs_set_the_number_of_steps(tmp_path, tokenizer):
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.pretrain import CausalLMObjective

    blocks = [np.arange(16, dtype=np.int64) % 50 + 5 for _ in range(41)]
    model = build_preset_model("micro", tokenizer, seed=0)
    cfg = PretrainConfig(epochs=2.5, batch_size=8, grad_accum=2, eval_every=100)
    trainer = Trainer(model, CausalLMObjective(), blocks, cfg, tmp_path)
    assert trainer.cfg.max_steps == 8  # 41 items = 5 full batches + 1 of 1 = 3 steps per epoch -> ceil(7.5)
    assert trainer.dropped_per_epoch == 0
    with pytest.raises(ValueError, match="set max_steps or epochs, not both"):
        PretrainConfig(epochs=1, max_steps=10)
    with pytest.raises(ConfigError, match="max_steps or epochs"):
        load_config("tiny", {"sft.epochs": 2})  # tiny.yaml counts SFT steps


def test_sft_without_a_model_names_the_flag(tmp_path):
    res = CliRunner().invoke(app, ["sft", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "pass --model/-m" in res.output and not (tmp_path / "pretrain").exists()


@pytest.mark.parametrize("scheduler", ["cosine", "linear", "constant"])
def test_learning_rate_schedules_warm_up_then_follow_their_shape(scheduler, tmp_path, tokenizer):
    """The shapes against transformers' own schedulers (same warmup, same floor 0), then the loop
    really trains with the chosen one (the logged lr)."""
    import json

    import torch
    from transformers import get_scheduler

    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.pretrain import CausalLMObjective
    from llm_recipe.train.schedule import scheduled_lr

    cfg = PretrainConfig(lr=1e-3, warmup_steps=3, max_steps=12, min_lr_ratio=0.0, scheduler=scheduler)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    hf = get_scheduler(f"{scheduler}_with_warmup" if scheduler == "constant" else scheduler, opt,
                       num_warmup_steps=3, num_training_steps=12)
    theirs = []
    for _ in range(12):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        hf.step()
    ours = [scheduled_lr(s, cfg, 12) for s in range(12)]
    # transformers warms up from 0 (step 0 at lr 0); ours from lr/warmup: compare after warmup
    assert ours[3:] == pytest.approx(theirs[3:], abs=1e-12)
    assert ours[0] == pytest.approx(1e-3 / 3)
    blocks = [np.arange(16, dtype=np.int64) % 50 + 5 for _ in range(32)]
    Trainer(build_preset_model("micro", tokenizer, seed=0), CausalLMObjective(), blocks,
            cfg.model_copy(update={"batch_size": 8, "log_every": 1, "eval_every": 100}), tmp_path).fit()
    logged = [json.loads(ln)["lr"] for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx(ours)


def test_ctrl_c_stops_like_sigterm_and_torn_or_stale_logs_do_not_break_a_rerun(tmp_path, tokenizer):
    """SIGINT mid-training: the step finishes, a checkpoint is written, the loop returns (a second
    Ctrl-C would abort). A log torn by a kill, and the log of an attempt that starts over, are
    handled on the next run: no crash, no duplicated steps."""
    import json
    import os
    import signal

    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.pretrain import CausalLMObjective

    blocks = [np.arange(16, dtype=np.int64) % 50 + 5 for _ in range(32)]
    cfg = PretrainConfig(max_steps=6, batch_size=8, log_every=1, eval_every=100)

    def ctrl_c_at_2(trainer):
        if trainer.state.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    t = Trainer(build_preset_model("micro", tokenizer, seed=0), CausalLMObjective(), blocks, cfg, tmp_path,
                callbacks=[ctrl_c_at_2])
    res = t.fit()
    assert res["stopped_early"] and res["step"] == 2 and signal.getsignal(signal.SIGINT) is before
    assert (tmp_path / "checkpoints").is_dir()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 1.2')  # torn by a kill mid-write
    t2 = Trainer(build_preset_model("micro", tokenizer, seed=0), CausalLMObjective(), blocks, cfg, tmp_path)
    assert t2.resume("latest") and t2.fit()["step"] == 6
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    # starting over without a checkpoint keeps none of the earlier attempt's records
    t3 = Trainer(build_preset_model("micro", tokenizer, seed=0), CausalLMObjective(), blocks, cfg, tmp_path)
    t3.fit()
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


class _Mean:
    """Objective: mean squared error of a linear model over the batch's items (no `loss_tokens`),
    or over the batch's tokens (`loss_tokens`: each item counts `w` times)."""

    def __init__(self, tokens: bool):
        self.tokens = tokens

    def collate(self, items):
        x = torch.tensor([i[0] for i in items], dtype=torch.float32)
        w = torch.tensor([i[1] for i in items], dtype=torch.float32)
        batch = {"x": x, "w": w}
        if self.tokens:
            batch["loss_tokens"] = int(w.sum())
        return batch

    def loss(self, model, batch):
        err = (model(batch["x"]).squeeze(-1) - 1.0) ** 2
        if self.tokens:
            return (err * batch["w"]).sum() / batch["w"].sum(), {}
        return err.mean(), {}


@pytest.mark.parametrize("tokens", [False, True])
def test_every_example_trains_and_a_step_is_the_mean_over_its_items(tmp_path, tokens):
    """10 items, batch 4: batches of 4, 4 and 2 every epoch (none dropped). With grad_accum 3 one
    step holds the whole epoch, and its gradient is the mean over all 10 items (or their tokens),
    not a mean of three batch means that over-weights the batch of 2."""
    import torch

    from llm_recipe.config import TrainConfig
    from llm_recipe.train.loop import Trainer

    items = [([float(i), 1.0 - i / 10], 1 + i % 3) for i in range(10)]
    model = torch.nn.Linear(2, 1)
    cfg = TrainConfig(epochs=1, batch_size=4, grad_accum=3, lr=1e-3, warmup_steps=0, eval_every=100, max_grad_norm=None)
    trainer = Trainer(model, _Mean(tokens), items, cfg, tmp_path, seed=3)
    assert trainer.dropped_per_epoch == 0 and trainer.cfg.max_steps == 1
    assert sorted(len(b) for b in trainer._epoch_batches(0)) == [2, 4, 4]
    assert sorted(int(i) for b in trainer._epoch_batches(0) for i in b) == list(range(10))
    want_model = torch.nn.Linear(2, 1)
    want_model.load_state_dict(model.state_dict())
    obj = _Mean(tokens)
    obj.loss(want_model, obj.collate(items))[0].backward()  # the whole epoch as one batch
    want = [p.grad.clone() for p in want_model.parameters()]
    seen = []
    step = trainer.optimizer.step

    def capture(*a, **k):
        seen.append([p.grad.clone() for p in model.parameters()])
        return step(*a, **k)

    trainer.optimizer.step = capture
    trainer.fit()
    for got, exp in zip(seen[0], want, strict=True):
        torch.testing.assert_close(got, exp)


def test_a_run_too_short_to_train_is_warned_with_what_to_change(tmp_path, tokenizer, capsys):
    """The issue's run: 24 pairs, batch 16, 3 epochs, lr 1e-6 on a 135M model: 6 steps (no pair
    dropped any more) and lr x steps = 6e-6: one warning line naming both and the fixes."""
    cfg, _ = fit_to_model("dpo", DPOConfig(), SMOL, lora=False)
    line = run_length_warning("dpo", cfg, 6, 24, 2, SMOL, lora=False)
    assert line.startswith("dpo: 6 optimizer steps (24 examples, batch 16 x grad_accum 1, 3 epochs)")
    assert "lr 1e-06 x 6 steps = 6e-06 < 0.0001" in line and "dpo.epochs=25" in line and "--preset small-data" in line
    assert run_length_warning("dpo", cfg, 6, 24, 2, MICRO, lora=False).count(";") == 1  # few steps only
    assert run_length_warning("sft", SFTConfig(lr=2e-5), 500, 4000, 500, SMOL, lora=False) is None
    assert "x 100 steps" in run_length_warning("sft", SFTConfig(lr=2e-7), 100, 4000, 100, SMOL, lora=False)
    # SFT counts what it batches: packed rows, not the examples packed into them
    assert "(102 packed rows, batch 8" in run_length_warning("sft", SFTConfig(batch_size=8), 40, 102, 13, SMOL, lora=True)
    assert "(102 examples," in run_length_warning("sft", SFTConfig(batch_size=8, packing=False), 40, 102, 13, SMOL,
                                                  lora=True)
    # the loop resolves the run, then says it once, and the stage report carries it
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.pretrain import CausalLMObjective

    blocks = [np.arange(16, dtype=np.int64) % 50 + 5 for _ in range(20)]
    trainer = Trainer(build_preset_model("micro", tokenizer, seed=0), CausalLMObjective(), blocks,
                      PretrainConfig(epochs=2, batch_size=8, eval_every=100), tmp_path)
    assert trainer.warnings == ["pretrain: 6 optimizer steps (20 examples, batch 8 x grad_accum 1, 2 epochs); "
                                "set pretrain.epochs=17"]
    assert "warning: pretrain: 6 optimizer steps" in capsys.readouterr().out


def test_small_data_preset_fills_the_fields_not_set():
    cfg, applied = apply_preset("dpo", DPOConfig(preset="small-data", lr=1e-4))
    assert "lr" not in applied and cfg.lr == 1e-4  # the user's value stays
    assert cfg.lora is not None and cfg.lora.r == PRESETS["small-data"]["dpo"]["lora"]["r"]
    assert cfg.sft_alpha == PRESETS["small-data"]["dpo"]["sft_alpha"] > 0
    assert fit_to_model("dpo", cfg, SMOL, lora=True)[1] == {"max_length": 1024}  # preset values count as set
    assert apply_preset("dpo", DPOConfig()) == (DPOConfig(), {})
    cfg, applied = apply_preset("dpo", DPOConfig(preset="small-data", epochs=5))
    assert cfg.epochs == 5 and "max_steps" not in applied  # the user counts epochs: the preset's steps stay out
    assert load_config("tiny", {"dpo.preset": "small-data"}).dpo.preset == "small-data"  # a recipe field too
