"""Every training stage under `torchrun` with 2 CPU processes (gloo), as `accelerate launch` runs it.

Each run is a real `llm-recipe` command in 2 processes. For pretraining, SFT, the reward model and
DPO the logged loss after N steps must equal a 1-process run with the same global batch (2 x 4
vs 1 x 8) to within 1e-4 relative (the two runs sum gradients in another order); evaluation
uses an odd number of batches, which used to leave one rank waiting forever. PPO and GRPO must
finish. A run that hangs fails at its timeout instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # trains or drives real processes for a minute or more

TIMEOUT = 300  # seconds per command; a collective mismatch would otherwise hang forever


def run(args: list[str], procs: int, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
                if procs > 1 else [sys.executable])
    try:
        res = subprocess.run([*launcher, "-m", "llm_recipe", *args], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{procs} processes did not finish in {TIMEOUT}s (a hang): {' '.join(args)}\n{e.stdout}\n{e.stderr}")
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


def metrics(path: Path) -> dict[int, dict]:
    """step -> the training record and the evaluation record of that step, merged."""
    out: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out.setdefault(rec["step"], {}).update(rec)
    return out


def assert_same_run(one: Path, two: Path, keys=("loss", "eval_loss")) -> None:
    a, b = metrics(one / "metrics.jsonl"), metrics(two / "metrics.jsonl")
    assert a.keys() == b.keys()
    last = max(a)
    for key in keys:
        assert b[last][key] == pytest.approx(a[last][key], rel=1e-4), (key, a[last], b[last])
    assert b[0]["eval_loss"] == pytest.approx(a[0]["eval_loss"], rel=1e-5)


@pytest.fixture(scope="module")
def base(tmp_path_factory, tokenizer):
    """A micro model whose tokenizer carries a chat format, the starting point of every run here."""
    import copy

    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.chat_formats import apply_chat_format, get_chat_format

    out = tmp_path_factory.mktemp("mp_base")
    tok = copy.deepcopy(tokenizer)
    model = build_preset_model("micro", tok, seed=0)
    if apply_chat_format(tok, get_chat_format("chatml")):
        model.resize_token_embeddings(len(tok))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def both(tmp_path: Path, args: list[str]) -> tuple[Path, Path]:
    """The same command on 1 process (global batch 8) and on 2 (4 each): their output dirs."""
    one, two = tmp_path / "one", tmp_path / "two"
    run([*args, "-o", str(one), "--set", "compute.num_threads=1", *_batch(args, 8)], 1, tmp_path)
    run([*args, "-o", str(two), *_batch(args, 4)], 2, tmp_path)
    return one, two


def _batch(args: list[str], n: int) -> list[str]:
    return ["--set", f"{args[0] if args[0] != 'rm' else 'rm'}.batch_size={n}"]


def test_pretrain_two_processes_equal_one_with_odd_eval_batches_from_shards(tmp_path, base, small_corpus_dir):
    from llm_recipe.demo.sample_corpus import sample_corpus_files

    files = ",".join(str(f) for f in sample_corpus_files(small_corpus_dir))
    one, two = both(tmp_path, ["pretrain", "--set", f"model.name_or_path={base}", "--set", f"pretrain.data=[{files}]",
                               "--set", "pretrain.max_steps=6", "--set", "pretrain.block_size=64",
                               "--set", "pretrain.eval_every=3", "--set", "pretrain.eval_batches=3",
                               "--set", "pretrain.log_every=3", "--set", "pretrain.save_every=3",
                               "--set", "pretrain.warmup_steps=2"])
    # windows streamed from the token shards (tokenized once, by the main process): each rank reads
    # its half of every global batch, so together they train exactly what one process does
    assert_same_run(one / "pretrain", two / "pretrain")
    assert (two / "pretrain" / "tokens" / "stats.json").exists()
    a = load_file(one / "pretrain" / "model" / "model.safetensors")
    b = load_file(two / "pretrain" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert len(metrics(two / "pretrain" / "metrics.jsonl")) == 3  # one record per step, not one per process


def test_sft_two_processes_equal_one_and_sample_after_training(tmp_path, base):
    one, two = both(tmp_path, ["sft", "-m", str(base), "--set", "sft.bundled_examples=120", "--set", "sft.max_steps=4",
                               "--set", "sft.max_length=96", "--set", "sft.eval_every=2", "--set", "sft.eval_batches=1",
                               "--set", "sft.log_every=2", "--set", "sft.warmup_steps=1",
                               "--set", "sft.demo_prompts=[hello]", "--set", "generate.sampling.max_new_tokens=4"])
    assert_same_run(one / "sft", two / "sft")
    # the after-training sampling ran once, on the main process, after the model was saved
    assert (two / "sft" / "samples.jsonl").exists() and (two / "sft" / "format_following.json").exists()


def test_reward_model_two_processes_equal_one(tmp_path, base):
    one, two = both(tmp_path, ["rm", "train", "-m", str(base), "--set", "rm.synthetic_pairs=80", "--set", "rm.max_steps=4",
                               "--set", "rm.eval_every=2", "--set", "rm.eval_batches=1", "--set", "rm.log_every=2",
                               "--set", "rm.warmup_steps=1", "--set", "rm.max_length=96", "--set", "rm.norm_samples=8"])
    assert_same_run(one / "reward_model", two / "reward_model")
    report = json.loads((two / "reward_model" / "rm_report.json").read_text())
    assert report["eval"]["pairs"] > 0


def test_dpo_two_processes_equal_one(tmp_path, base):
    one, two = both(tmp_path, ["dpo", "-m", str(base), "--set", "dpo.style_pairs=64", "--set", "dpo.max_steps=4",
                               "--set", "dpo.eval_every=2", "--set", "dpo.eval_batches=1", "--set", "dpo.log_every=2",
                               "--set", "dpo.warmup_steps=1", "--set", "dpo.max_length=96", "--set", "dpo.eval_prompts=2",
                               "--set", "dpo.max_new_tokens=4", "--set", "sft.bundled_examples=400"])
    assert_same_run(one / "dpo", two / "dpo")
    # the reference log-probs were computed by both processes (half each) and cached once
    cached = load_file(two / "dpo" / "reference" / "ref_logps.safetensors")
    ref = load_file(one / "dpo" / "reference" / "ref_logps.safetensors")
    assert torch.allclose(cached["train"], ref["train"], atol=1e-4) and (cached["train"] != 0).all()


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_rl_finishes_on_two_processes(tmp_path, base, algo):
    small = [f"{algo}.iterations=2", f"{algo}.rollout_batch_size=8", f"{algo}.minibatch_size=4", f"{algo}.n_prompts=16",
             f"{algo}.eval_prompts=4", f"{algo}.sampling.max_new_tokens=6"] + ([f"{algo}.group_size=4"] if algo == "grpo" else [])
    res = run([algo, "-m", str(base), "-o", str(tmp_path), *(x for s in small for x in ("--set", s))], 2, tmp_path)
    assert "success" in res.stdout
    lines = (tmp_path / algo / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]  # one record per iteration, not one per process
    assert (tmp_path / algo / "model" / "model.safetensors").exists()


def test_fsdp_shards_the_model_and_trains_as_one_process(tmp_path, base, small_corpus_dir):
    """compute.fsdp: torch FSDP2 over the 2 processes (gloo); same losses as 1 process, and the
    checkpoints and the final model hold the full, unsharded weights."""
    from llm_recipe.demo.sample_corpus import sample_corpus_files

    files = ",".join(str(f) for f in sample_corpus_files(small_corpus_dir))
    args = ["pretrain", "--set", f"model.name_or_path={base}", "--set", f"pretrain.data=[{files}]",
            "--set", "pretrain.max_steps=4", "--set", "pretrain.block_size=64", "--set", "pretrain.eval_every=2",
            "--set", "pretrain.eval_batches=1", "--set", "pretrain.log_every=2", "--set", "pretrain.save_every=2",
            "--set", "pretrain.warmup_steps=1"]
    one, two = tmp_path / "one", tmp_path / "fsdp"
    run([*args, "-o", str(one), "--set", "compute.num_threads=1", "--set", "pretrain.batch_size=8"], 1, tmp_path)
    run([*args, "-o", str(two), "--set", "compute.fsdp=true", "--set", "pretrain.batch_size=4"], 2, tmp_path)
    assert_same_run(one / "pretrain", two / "pretrain")
    a = load_file(one / "pretrain" / "model" / "model.safetensors")
    b = load_file(two / "pretrain" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    ckpt = load_file(two / "pretrain" / "checkpoints" / "step-0000004" / "model.safetensors")
    assert all(ckpt[k].shape == a[k].shape for k in ckpt)  # full tensors, not one process's shard


def test_eval_and_report_on_two_processes_equal_one(tmp_path, tiny_run):
    """The eval stage runs on the main process while the other waits: the same report as 1 process."""
    import shutil

    reports = []
    for procs in (1, 2):
        run_dir = tmp_path / f"run{procs}"
        shutil.copytree(tiny_run, run_dir, ignore=shutil.ignore_patterns("checkpoints", "eval", "report.html"))
        run(["eval", str(run_dir), "--set", "eval.n_prompts=2", "--set", "eval.bootstrap=100",
             "--set", "eval.sampling.max_new_tokens=4", "--set", "eval.kl_max_new_tokens=4"], procs, tmp_path)
        run(["report", str(run_dir)], 1, tmp_path)  # reads files only: no process group involved
        rep = json.loads((run_dir / "eval" / "report.json").read_text())
        for row in rep["models"].values():
            row.pop("seconds")
            row.pop("path")
        reports.append(rep)
        assert (run_dir / "report.html").stat().st_size > 10_000
    one, two = reports
    assert one["models"] == two["models"] and one["order"] == two["order"]
