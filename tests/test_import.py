"""`llm-recipe import`: sources it finds, and one-line errors for what it cannot import (no real
checkpoint needed here; tests/test_smollm2.py imports a released one)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.models.importing import ImportError_, find_gguf, import_model

runner = CliRunner()


def test_find_gguf_by_file_directory_or_distribution(tmp_path):
    (tmp_path / "a").mkdir()
    f = tmp_path / "a" / "m.gguf"
    f.write_bytes(b"GGUF")
    assert find_gguf(f) == f and find_gguf(tmp_path / "a") == f
    (tmp_path / "a" / "n.gguf").write_bytes(b"GGUF")
    with pytest.raises(ImportError_, match="holds 2 GGUF files"):
        find_gguf(tmp_path / "a")
    assert find_gguf(tmp_path) is None  # a directory without one: an HF model directory
    assert find_gguf("no-such-package-or-hub-id") is None  # a hub id, tried as such
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ImportError_, match="not a GGUF file"):
        find_gguf(tmp_path / "w.bin")


def test_unsupported_gguf_architecture_is_one_line_exit_2(tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path / "weird.gguf"
    w = gguf.GGUFWriter(str(path), arch="weirdarch")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    res = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2 and "architecture weirdarch is not supported" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_hf_directory_is_validated_and_saved_as_safetensors(tmp_path, tokenizer):
    from llm_recipe.models.presets import build_preset_model

    src = tmp_path / "src"
    model = build_preset_model("micro", tokenizer, seed=0)
    model.save_pretrained(src, safe_serialization=False)  # a .bin checkpoint
    tokenizer.save_pretrained(src)
    rep = import_model(src, tmp_path / "out")
    assert rep["source"]["kind"] == "hf" and rep["check"]["max_logit_difference"] == 0.0
    assert (tmp_path / "out" / "model.safetensors").exists() and not list((tmp_path / "out").glob("*.bin"))
    assert json.loads((tmp_path / "out" / "import_report.json").read_text())["parameters"] == sum(
        p.numel() for p in model.parameters())
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(reloaded.get_input_embeddings().weight, model.get_input_embeddings().weight)
    bad = runner.invoke(app, ["import", str(tmp_path / "missing"), "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "error:" in bad.output
