import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import ConfigError, load_config, parse_overrides

runner = CliRunner()


def test_bundled_recipe_loads_and_overrides_apply():
    cfg = load_config("tiny", parse_overrides(["pretrain.lr=1e-3", "seed=7", "model.preset=micro"]))
    assert cfg.pretrain.lr == 1e-3 and cfg.seed == 7 and cfg.model.preset == "micro"
    assert cfg.pretrain.block_size == 256  # untouched fields keep the file's values


def test_override_opens_an_optional_section(tmp_path):
    # `lora` defaults to None (no LoRA); `--set ppo.lora.r=16` turns it on, even over `lora: null`
    cfg = load_config("tiny", parse_overrides(["ppo.lora.r=16"]))
    assert cfg.ppo.lora is not None and cfg.ppo.lora.r == 16
    f = tmp_path / "r.yaml"
    f.write_text("ppo:\n  lora: null\n")
    assert load_config(f, parse_overrides(["ppo.lora.r=8"])).ppo.lora.r == 8
    assert load_config(f).ppo.lora is None
    with pytest.raises(ConfigError, match="not a section"):
        load_config("tiny", parse_overrides(["seed.x=1"]))


def test_unknown_key_names_key_and_file(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("pretrain:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and "pretrain.lrr" in msg and "unknown key" in msg


def test_wrong_type_names_field_and_value(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("pretrain:\n  max_steps: many\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: pretrain\.max_steps: .*'many'"):
        load_config(f)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["pretrain.lr"])


def test_cli_prints_one_line_error_and_exit_code_2(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("model:\n  preset: huge\n")
    res = runner.invoke(app, ["pretrain", "--config", str(f)])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "model.preset" in lines[0] and "Traceback" not in res.output
    res = runner.invoke(app, ["pretrain", "--set", "pretrain.data=[/no/such/file.jsonl]", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "/no/such/file.jsonl" in res.output and "Traceback" not in res.output


def test_missing_model_directory_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["generate", "--model", str(tmp_path / "missing"), "--prompt", "hi"])
    assert res.exit_code == 2 and "no such model directory" in res.output


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "llm_recipe", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout


def test_cli_hides_weight_io_bars_but_not_hub_download_bars(tokenizer, tmp_path, capfd):
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    from llm_recipe.models.loading import hide_weight_io_bars, load_causal_lm
    from llm_recipe.models.presets import build_preset_model

    build_preset_model("micro", tokenizer).save_pretrained(tmp_path / "m")
    try:
        hf_logging.enable_progress_bar()
        load_causal_lm(tmp_path / "m")
        assert "Loading weights" in capfd.readouterr().err  # transformers' default: a bar per load
        hide_weight_io_bars()  # what every CLI command does first
        load_causal_lm(tmp_path / "m")
        build_preset_model("micro", tokenizer).save_pretrained(tmp_path / "m2")
        err = capfd.readouterr().err
        assert "Loading weights" not in err and "Writing model shards" not in err
        assert not hub_utils.are_progress_bars_disabled()  # downloads from the Hub still show progress
    finally:
        hf_logging.enable_progress_bar()


def test_one_compute_block_for_every_stage_with_stage_overrides(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("compute: {dtype: bfloat16, mixed_precision: bf16}\nsft: {compute: {gradient_checkpointing: true}}\n"
                 "ppo: {}\n")
    cfg = load_config(f)
    for c in (cfg.pretrain.compute, cfg.generate.compute, cfg.ppo.compute, cfg.sft.compute):
        assert c.dtype == "bfloat16" and c.mixed_precision == "bf16"
    assert cfg.sft.compute.gradient_checkpointing and not cfg.ppo.compute.gradient_checkpointing
    assert cfg.dpo is None  # a stage the recipe does not have stays off


@pytest.mark.parametrize("key,value,where", [
    ("model.dtype", "bfloat16", "'compute.dtype'"),
    ("sft.mixed_precision", "bf16", "'sft.compute.mixed_precision'"),
    ("dpo.dtype", "float16", "'dpo.compute.dtype'"),
    ("ppo.num_threads", "1", "'ppo.compute.num_threads'"),
    ("ppo.beta", "0.1", "'ppo.kl_coef'"),  # PPO's KL coefficient is not DPO/GRPO's beta
    ("bon.temperature", "0.7", "'bon.sampling.temperature'"),
])
def test_moved_keys_are_one_line_errors_naming_the_new_place(key, value, where):
    with pytest.raises(ConfigError) as e:
        load_config(None, parse_overrides([f"{key}={value}"]))
    assert "\n" not in str(e.value) and f"'{key}' moved to {where}" in str(e.value)
    assert load_config(None, parse_overrides(["grpo.beta=0.1"])).grpo.beta == 0.1  # GRPO keeps its beta


def test_training_commands_share_one_vocabulary_with_defaults_in_help(tmp_path):
    """-m/--model, -d/--data, -o/--output-dir everywhere; the key hyperparameters as options whose
    help shows the section default and a released model's; given options land in the config."""
    runner = CliRunner()
    for cmd in (["sft"], ["dpo"], ["rm", "train"]):
        text = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "220"}).output
        for flag in ("--model", "-m", "--data", "-d", "--output-dir", "-o", "--lr", "--max-steps", "--epochs",
                     "--batch-size", "--report-to"):
            assert flag in text, (cmd, flag)
    assert "default 0.001; a released model: 2e-05" in runner.invoke(app, ["sft", "--help"], env={"COLUMNS": "220"}).output
    assert "--num-samples" in runner.invoke(app, ["bon", "--help"], env={"COLUMNS": "220"}).output
    out = tmp_path / "run"
    res = runner.invoke(app, ["pretrain", "-o", str(out), "--set", "model.preset=micro", "--set", "corpus.docs_per_source=30",
                              "--set", "tokenizer.vocab_size=400", "--set", "pretrain.block_size=32",
                              "--set", "pretrain.eval_every=2", "--lr", "0.005", "--max-steps", "2", "--batch-size", "4",
                              "--report-to", "tensorboard"])
    assert res.exit_code == 0, res.output
    conf = json.loads((out / "pretrain" / "run.json").read_text())["config"]["pretrain"]
    assert (conf["lr"], conf["max_steps"], conf["batch_size"], conf["report_to"]) == (0.005, 2, 4, ["tensorboard"])
    assert any((out / "pretrain" / "tracking").rglob("events.out.tfevents.*"))


def test_true_for_a_count_and_infinite_rates_are_config_errors():
    for override, expected in (({"pretrain.max_steps": True}, "max_steps: expected a number, got true"),
                               ({"sft.lr": float("inf")}, "sft.lr: Input should be a finite number"),
                               ({"dpo.beta": "nan"}, "dpo.beta: Input should be a finite number")):
        with pytest.raises(ConfigError, match=expected):
            load_config("tiny", override)
    assert load_config("tiny", {"sft.packing": True}).sft.packing is True  # a real bool field still takes true


def test_the_cli_module_imports_no_torch_or_transformers():
    """`llm-recipe --help` and every command's parsing stay instant: heavy imports live inside the
    commands (importing transformers took 5-15 s on this machine)."""
    import subprocess
    import sys

    code = "import sys, llm_recipe.cli; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
