"""TRL's / transformers' / peft's names for the settings are read as the project's, with a note;
`llm-recipe config show` prints the resolved config and `config schema` every field, each with a
description (#31)."""

import pytest
import yaml
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import RecipeConfig, load_config
from llm_recipe.config.schema import aliases_of, field_rows

TRL_NAMES = [  # (override, the project's field, value)
    ("sft.learning_rate", "sft.lr", 2e-5), ("sft.per_device_train_batch_size", "sft.batch_size", 4),
    ("sft.gradient_accumulation_steps", "sft.grad_accum", 2), ("dpo.num_train_epochs", "dpo.epochs", 1.0),
    ("sft.max_seq_length", "sft.max_length", 512), ("sft.logging_steps", "sft.log_every", 5),
    ("rm.save_steps", "rm.save_every", 50), ("dpo.rpo_alpha", "dpo.sft_alpha", 0.5),
    ("grpo.num_generations", "grpo.group_size", 4), ("grpo.max_completion_length", "grpo.sampling.max_new_tokens", 32),
    ("grpo.epsilon_high", "grpo.eps_high", 0.28), ("ppo.cliprange", "ppo.clip_eps", 0.1),
    ("sft.lora.lora_alpha", "sft.lora.alpha", 32.0), ("dpo.lr_scheduler_type", "dpo.scheduler", "linear"),
]


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("trl,ours,value", TRL_NAMES, ids=[t for t, _, _ in TRL_NAMES])
def test_trl_names_are_read_as_the_projects_with_a_note(trl, ours, value, capsys, monkeypatch):
    from llm_recipe.config import section

    monkeypatch.setattr(section, "_SAID", set())  # each note is said once per process
    cfg = load_config(None, {trl: value})  # an override of a section the defaults lack opens it
    assert _get(cfg, ours) == value
    parent, name = trl.rsplit(".", 1)
    assert f"note: '{name}' is read as '{ours.removeprefix(parent + '.')}'" in capsys.readouterr().err


def test_a_trl_name_in_a_recipe_file_and_its_clash(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("sft:\n  learning_rate: 2.0e-5\n  warmup_ratio: 0.1\n  max_steps: 40\n", encoding="utf-8")
    cfg = load_config(recipe)
    assert cfg.sft.lr == 2e-5 and cfg.sft.warmup_ratio == 0.1
    recipe.write_text("sft:\n  learning_rate: 2.0e-5\n  lr: 1.0e-3\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["config", "show", "-c", str(recipe)])
    assert res.exit_code == 2
    assert f"error: {recipe}: sft: 'learning_rate' and 'lr' name the same setting: give one" in res.output


def test_warmup_ratio_sets_the_warmup_from_the_runs_length():
    from llm_recipe.config import SFTConfig
    from llm_recipe.train.schedule import scheduled_lr

    cfg = SFTConfig(lr=1.0, warmup_ratio=0.1, max_steps=100, scheduler="constant")
    assert [scheduled_lr(s, cfg, 100) for s in (0, 4, 9, 10)] == [0.1, 0.5, 1.0, 1.0]
    assert scheduled_lr(4, cfg.model_copy(update={"warmup_ratio": None}), 100) == pytest.approx(5 / cfg.warmup_steps)


def test_config_show_prints_the_resolved_config_with_overrides():
    res = CliRunner().invoke(app, ["config", "show", "-c", "tiny", "--set", "sft.learning_rate=1e-4", "--seed", "7"])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.stdout)
    assert shown["seed"] == 7 and shown["sft"]["lr"] == 1e-4
    assert shown["sft"]["compute"] == shown["compute"]  # resolved: the shared compute block spread
    assert RecipeConfig.model_validate(shown).sft.lr == 1e-4  # what is printed loads back as the same config


def test_every_field_has_a_description():
    rows = field_rows(RecipeConfig)
    assert len(rows) > 600
    missing = [r.name for r in rows if not r.description.strip()]
    assert not missing, f"fields without a description: {missing}"


def test_config_schema_prints_type_default_description_and_the_aliases():
    res = CliRunner().invoke(app, ["config", "schema", "dpo"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "dpo.loss_type  (sigmoid | cdpo | robust | ipo | simpo | orpo | kto; default 'sigmoid')" in out
    assert "dpo.beta  (float; default 0.1)\n    DPO's beta" in out
    assert "dpo.learning_rate -> dpo.lr" in out and "sft." not in out
    assert set(aliases_of(RecipeConfig)) >= {"sft.learning_rate", "grpo.num_generations", "ppo.num_ppo_epochs"}
    bad = CliRunner().invoke(app, ["config", "schema", "nope"])
    assert bad.exit_code == 2 and "no section or field 'nope' (sections: seed, output_dir" in bad.output


def test_dpo_help_lists_every_registered_loss():
    from llm_recipe.cli import DPO_LOSS_HELP
    from llm_recipe.train.dpo import LOSSES

    assert DPO_LOSS_HELP.split(" | ") == list(LOSSES)
    res = CliRunner().invoke(app, ["dpo", "--help"])
    assert res.exit_code == 0 and "sigmoid | cdpo" in res.output.replace("\n", " ")
