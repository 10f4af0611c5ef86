"""The last tracebacks and weak exits (#32 items 8, 9): each is one line naming what is wrong and a
non-zero exit, never a traceback, an empty table or a default run in place of an error."""

import json
import os

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_line(res) -> str:
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    return line


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer):
    """A reward model (1 label), a 2-label sequence classifier and a causal LM, all micro-sized."""
    from transformers import AutoModelForSequenceClassification

    from llm_recipe.models.presets import build_preset_model, preset_config

    out = tmp_path_factory.mktemp("models")
    for name, labels in (("rm", 1), ("classifier", 2)):
        cfg = preset_config("micro", tokenizer)
        cfg.num_labels, cfg.pad_token_id = labels, tokenizer.pad_token_id
        AutoModelForSequenceClassification.from_config(cfg).save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(out / "policy")
    tokenizer.save_pretrained(out / "policy")
    return out


@pytest.fixture
def files(tmp_path):
    f = {"empty": tmp_path / "empty.jsonl", "binary": tmp_path / "binary.jsonl", "ok": tmp_path / "ok.jsonl",
         "empty_yaml": tmp_path / "empty.yaml", "binary_txt": tmp_path / "binary.txt"}
    f["empty"].write_text("")
    f["binary"].write_bytes(bytes(range(128, 256)) * 8 + b"\n" + os.urandom(300).replace(b"\n", b"\xff") + b"\n")
    f["binary_txt"].write_bytes(b"\xff\xfe\xfa\n" * 4)
    f["ok"].write_text(json.dumps({"prompt": "hi", "response": "hello"}) + "\n")
    f["empty_yaml"].write_text("# nothing here yet\n")
    return f


def test_an_override_that_is_not_yaml_is_one_line_naming_it(tmp_path):
    line = error_line(invoke("pretrain", "-o", tmp_path, "--set", "seed=[1,2"))
    assert line.startswith("error: override 'seed=[1,2': the value is not valid YAML ("), line


def test_an_empty_config_file_is_an_error_not_a_default_run(tmp_path, files):
    line = error_line(invoke("pretrain", "-c", files["empty_yaml"], "-o", tmp_path / "run", "--max-steps", "1"))
    assert line == f"error: {files['empty_yaml']}: the config file is empty (no settings); give a recipe, or leave " \
                   "out --config for the defaults"
    assert not (tmp_path / "run").exists()  # nothing was started


def test_rm_score_says_what_is_wrong_with_the_model_the_output_and_the_input(tmp_path, models, files):
    out = tmp_path / "scored.jsonl"
    line = error_line(invoke("rm", "score", "--rm", models / "classifier", "-i", files["ok"], "--out", out))
    assert line == f"error: {models / 'classifier'}: a reward model has num_labels=1, this one has 2"
    (tmp_path / "a_folder").mkdir()
    line = error_line(invoke("rm", "score", "--rm", models / "rm", "-i", files["ok"], "--out", tmp_path / "a_folder"))
    assert line.startswith(f"error: {tmp_path / 'a_folder'}: cannot write: a folder of that name exists"), line
    line = error_line(invoke("rm", "score", "--rm", models / "rm", "-i", files["empty"], "--out", out))
    assert line == f"error: rm score: {files['empty']}: no usable records (0 read; skipped: no records at all)"
    line = error_line(invoke("rm", "score", "--rm", models / "rm", "-i", files["binary"], "--out", out))
    assert line.startswith(f"error: rm score: {files['binary']}: no usable records (2 read; skipped: not_utf8 2; "
                           f"first: {files['binary']}:1"), line
    assert not out.exists()  # no empty "scored" file
    res = invoke("rm", "score", "--rm", models / "rm", "-i", files["ok"], "--out", out)
    assert res.exit_code == 0 and "scored 1 records" in res.output, res.output


def test_prefs_agreement_with_every_record_skipped_fails_with_the_counts(tmp_path):
    ann = tmp_path / "ann.jsonl"
    ann.write_text('{"annotator": "a", "label": "A"}\n{"item_id": "1"}\nnot json\n')
    line = error_line(invoke("prefs", "agreement", ann, "--report", tmp_path / "report.json"))
    assert line.startswith("error: annotations: no usable records (3 read; skipped: "), line
    assert "invalid_json 1" in line and f"first: {ann}:1" in line
    assert not (tmp_path / "report.json").exists()


def test_sft_stats_on_undecodable_data_fails_with_the_reason(files, tokenizer_dir):
    line = error_line(invoke("sft-stats", "-d", files["binary"], "-t", tokenizer_dir))
    assert line == f"error: SFT data: no usable records (2 read; skipped: not_utf8 2; first: {files['binary']}:1: " \
                   "not_utf8)"


def test_grpo_with_unusable_prompts_names_the_files_and_the_reasons(tmp_path, models, files):
    bad_jsonl = tmp_path / "prompts.jsonl"
    bad_jsonl.write_text('{"question": "no prompt key"}\n{"prompt": ""}\n')
    line = error_line(invoke("grpo", "-m", models / "policy", "-o", tmp_path / "run",
                             "--set", f"grpo.prompts=[{files['binary_txt']}, {bad_jsonl}]"))
    assert line.startswith(f"error: RL prompts ({files['binary_txt']}, {bad_jsonl}): no usable records (6 read; "
                           "skipped: not_utf8 4, "), line
    assert "missing_field 1" in line and "empty_prompt 1" in line


def test_import_of_a_missing_gguf_is_no_such_file_not_a_hub_lookup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for src in ("missing.gguf", str(tmp_path / "missing.gguf"), "./missing-model"):
        line = error_line(invoke("import", src, "-o", tmp_path / "out"))
        assert line == f"error: {src}: no such file or folder", line


def test_curate_on_undecodable_input_reports_the_not_utf8_count(tmp_path, files):
    line = error_line(invoke("curate", "-c", "tiny", "-o", tmp_path, "--set", f"curate.input.paths=[{files['binary']}]",
                             "--set", "curate.executor.workers=1", "--set", "curate.ner.enabled=false"))
    assert line == f"error: curate input: no usable records (2 read; skipped: not_utf8 2; first: {files['binary']}:1 " \
                   "(not_utf8))"
    stats = json.loads((tmp_path / "curated" / "stats.json").read_text())  # the audit is kept
    assert stats["steps"]["read"]["dropped"] == {"not_utf8": 2}
