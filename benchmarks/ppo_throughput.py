"""GRPO / PPO throughput: ours vs TRL, same models, same settings.

  GRPO (default, `--algo grpo`): ours (`train.grpo.run_grpo`) vs TRL 1.16's `GRPOTrainer` on the
        grid of `benchmarks/harness.py` (own process per run, interleaved repeats, pruning rule):
        ours fp32 | bf16 autocast | bf16 weights; TRL the same precisions x gradient checkpointing
        on/off (its defaults: bf16 autocast, checkpointing on; use_liger_loss: Triton, GPU only).
        End-to-end samples/s (rollout + scoring + reference + update) from the end of iteration
        `--warmup` to the end; MFU over the model FLOPs of generation, reward model, reference and
        update (`grpo_flops`).
  PPO (`--algo ppo`): ours (`train.ppo.run_ppo`, a separate value model as TRL's) vs
        `trl.experimental.ppo.PPOTrainer` from trl==1.12.0 (the last TRL with a PPO trainer), on the
        same harness grid: ours fp32 | bf16 autocast | bf16 weights; TRL the same precisions x
        gradient checkpointing on/off, each TRL run with the benchmark venv's python
        (`.venv-bench-trl112`: trl 1.12.0 installed there with --no-deps; torch/transformers are
        the main venv's, through a .pth file). MFU over `ppo_flops`.

Both sides get the same policy (preset, random init: rollouts rarely stop early, so both generate
the full response length), the same reward model (a `*ForSequenceClassification` head on the same
backbone), the same prompts (chat-rendered), rollout batch, minibatch, epochs, response length and
temperature, at each precision of the grid. The compute each side spends differs: ours runs its
forward passes padding-free (packed sequences), projects to the vocabulary only at response
positions, and in GRPO runs each prompt once per group (prefill and training passes); TRL pads.
Each run is its own process; printed (and written to benchmarks/results/NAME.json): end-to-end
samples/s, CPU time, peak RSS, MFU, and ours / the peer's best at the same precision.

    python benchmarks/ppo_throughput.py [--iterations 5] [--warmup 1]          GRPO grid
    python benchmarks/ppo_throughput.py --algo ppo [--iterations 5] [--repeats 3]   PPO grid
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRL112_PY = ROOT / ".venv-bench-trl112" / "bin" / "python"
ROLLOUT, MINIBATCH, EPOCHS, RESP_LEN, GROUP = 32, 16, 2, 24, 8


# ---- shared fixtures (built once by the parent) ---------------------------------------------
def prepare(work: Path, preset: str) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification

    from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files
    from llm_recipe.demo.style import single_turn_examples
    from llm_recipe.infer.generate import chat_prompt_ids
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.chat_formats import apply_chat_format, get_chat_format
    from llm_recipe.tokenizer.train import train_and_save

    corpus = generate_sample_corpus(work / "corpus", docs_per_source=150, seed=0)
    texts = [json.loads(ln)["text"] for f in sample_corpus_files(corpus)
             for ln in Path(f).read_text(encoding="utf-8").splitlines()]
    tok = train_and_save(texts, work / "tok", vocab_size=2000)
    fmt = get_chat_format("chatml", tok)
    apply_chat_format(tok, fmt)
    policy = build_preset_model(preset, tok, seed=0)
    policy.resize_token_embeddings(len(tok))
    policy.generation_config.pad_token_id = tok.pad_token_id
    policy.save_pretrained(work / "policy")
    tok.save_pretrained(work / "policy")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        rm = AutoModelForSequenceClassification.from_pretrained(work / "policy", num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    rm.save_pretrained(work / "rm")
    tok.save_pretrained(work / "rm")
    prompts = [p for p, _ in single_turn_examples(400, seed=5)][:128]
    ids = chat_prompt_ids(tok, fmt, prompts)
    (work / "prompts.json").write_text(json.dumps({"prompts": prompts, "ids": ids}, ensure_ascii=False))
    return {"work": str(work)}


# ---- workers (each in its own process) ------------------------------------------------------
def _load(work: Path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(work / "policy")
    policy = AutoModelForCausalLM.from_pretrained(work / "policy")
    rm = AutoModelForSequenceClassification.from_pretrained(work / "rm", num_labels=1)
    data = json.loads((work / "prompts.json").read_text())
    return tok, policy, rm, data


# ---- GRPO on the harness grid (each contender in its own process) --------------------------------
DTYPE = {"fp32": "float32", "bf16-autocast": "float32", "bf16-weights": "bfloat16"}


def grpo_contenders() -> list:
    from harness import gc, grid

    return grid("TRL", {"gradient_checkpointing": (True, False)},
                {"precision": "bf16-autocast", "gradient_checkpointing": True},
                lambda prec, kw: gc(kw["gradient_checkpointing"]))


def grpo_flops(work: Path) -> tuple[float, dict]:
    """Model FLOPs per sample: per group of G, the prompt once and G responses of RESP_LEN after it,
    for generation (LM head at response tokens), the reward model (no LM head), the reference (1x
    forward) and the update (3x forward) (`roof.py`)."""
    from roof import Shapes, forward_flops
    from transformers import AutoConfig

    shapes = Shapes.of(AutoConfig.from_pretrained(work / "policy"))
    ids = json.loads((work / "prompts.json").read_text())["ids"]
    per_group = []
    for p in (len(x) for x in ids):
        lm = forward_flops(shapes, p) + GROUP * forward_flops(shapes, RESP_LEN, p, RESP_LEN)
        rm = forward_flops(shapes, p) + GROUP * forward_flops(shapes, RESP_LEN, p)
        per_group.append((1 + 1 + 3) * lm + rm)
    return sum(per_group) / len(per_group) / GROUP, {"shapes": vars(shapes), "prompts": len(ids),
                                                     "mean_prompt_tokens": sum(map(len, ids)) / len(ids)}


def grpo_work(c, args, clock) -> dict:
    import torch

    work = Path(args.work)
    tok, policy, rm, data = _load(work)
    policy, rm = policy.to(getattr(torch, DTYPE[c.precision])), rm.to(getattr(torch, DTYPE[c.precision]))
    samples = lambda step: step * ROLLOUT  # noqa: E731
    if c.side == "ours":
        from llm_recipe.config import ComputeConfig, GRPOConfig, SamplingConfig
        from llm_recipe.infer.reward import RewardScorer
        from llm_recipe.tokenizer.chat_formats import get_chat_format
        from llm_recipe.train.grpo import run_grpo
        from llm_recipe.train.rl_loop import RLSetup

        rm.eval().requires_grad_(False)
        s = RLSetup.build(policy, tok, RewardScorer(rm, tok, get_chat_format("chatml", tok)), data["prompts"], [])
        cfg = GRPOConfig(iterations=args.iterations, rollout_batch_size=ROLLOUT, lr=1e-5, success_prefix=None,
                         sampling=SamplingConfig(max_new_tokens=RESP_LEN, temperature=1.0), minibatch_size=ROLLOUT,
                         epochs=1, group_size=GROUP, beta=0.04,
                         compute=ComputeConfig(mixed_precision="bf16" if c.precision == "bf16-autocast" else "no",
                                               dtype=DTYPE[c.precision]))

        def tick(tr):
            if tr.state["step"] == args.warmup:
                clock.mark("start", samples(args.warmup))

        with tempfile.TemporaryDirectory() as d:
            run_grpo(s, cfg, Path(d) / "ours_grpo", save=False, callbacks=[tick])
        clock.mark("end", samples(args.iterations))
        return {}
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    class Tick(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step in (args.warmup, args.iterations):
                clock.mark("start" if state.global_step == args.warmup else "end", samples(state.global_step))

    with tempfile.TemporaryDirectory() as d:
        targs = GRPOConfig(output_dir=d, per_device_train_batch_size=ROLLOUT, gradient_accumulation_steps=1,
                           num_generations=GROUP, max_completion_length=RESP_LEN, max_steps=args.iterations,
                           temperature=1.0, learning_rate=1e-5, beta=0.04, loss_type="grpo", report_to="none",
                           use_cpu=True, bf16=c.precision == "bf16-autocast", save_strategy="no", logging_steps=10**6,
                           disable_tqdm=True, **c.settings)
        trainer = GRPOTrainer(model=policy, reward_funcs=rm, args=targs, processing_class=tok,
                              train_dataset=Dataset.from_dict({"prompt": [tok.decode(i) for i in data["ids"]]}),
                              reward_processing_classes=tok, callbacks=[Tick()])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return {}


def main_grpo(argv: list[str]) -> None:
    import harness

    ap = argparse.ArgumentParser(description="GRPO throughput grid: ours vs TRL GRPOTrainer")
    ap.add_argument("--algo", default="grpo")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    harness.add_args(ap, "grpo_throughput")
    args = ap.parse_args(argv)

    def build_fixture(args, work: Path) -> dict:
        prepare(work, args.preset)
        fps, setup = grpo_flops(work)
        return {**setup, "flops_per_sample": fps, "rollout": ROLLOUT, "group": GROUP, "response_tokens": RESP_LEN}

    def describe(setup: dict) -> dict:
        tokens = int(ROLLOUT * (setup["mean_prompt_tokens"] + RESP_LEN))
        return {"flops_per_unit": setup["flops_per_sample"], "roof_shapes": setup["shapes"],
                "roof_tokens": (tokens, ROLLOUT * RESP_LEN)}

    harness.main_with_fixture(
        args, argv, build_fixture, describe, name=args.name, title=f"GRPO ({args.preset}, {args.iterations} "
        f"iterations x {ROLLOUT} samples of {RESP_LEN} tokens, G={GROUP})", unit="samples/s", script=__file__,
        contenders=grpo_contenders(), work=grpo_work,
        flops_formula="per sample (groups of G, the prompt once): generation 1x + reference 1x + update 3x forward "
                      "with the LM head at response tokens, + the reward model 1x forward (benchmarks/roof.py)")


# ---- PPO on the harness grid (TRL 1.12 in its own venv) -----------------------------------------
def ppo_contenders() -> list:
    from harness import gc, grid

    return grid("TRL 1.12", {"gradient_checkpointing": (True, False)},
                {"precision": "bf16-autocast", "gradient_checkpointing": True},
                lambda prec, kw: gc(kw["gradient_checkpointing"]), python=str(TRL112_PY))


def ppo_flops(work: Path) -> tuple[float, dict]:
    """Model FLOPs per sample: generation (LM head at response tokens), the reward model, the
    reference (1x forward, LM head) and the value model's rollout pass (1x, no head), then per PPO
    epoch the policy and the value model trained (3x forward each) (`roof.py`)."""
    from roof import Shapes, forward_flops
    from transformers import AutoConfig

    shapes = Shapes.of(AutoConfig.from_pretrained(work / "policy"))
    ids = json.loads((work / "prompts.json").read_text())["ids"]
    per = []
    for p in (len(x) for x in ids):
        lm, body = forward_flops(shapes, p + RESP_LEN, 0, RESP_LEN), forward_flops(shapes, p + RESP_LEN)
        per.append(2 * lm + 2 * body + EPOCHS * 3 * (lm + body))
    return sum(per) / len(per), {"shapes": vars(shapes), "prompts": len(ids),
                                 "mean_prompt_tokens": sum(map(len, ids)) / len(ids)}


def ppo_work(c, args, clock) -> dict:
    import torch

    work = Path(args.work)
    tok, policy, rm, data = _load(work)
    dtype = getattr(torch, DTYPE[c.precision])
    policy, rm = policy.to(dtype), rm.to(dtype)
    samples = lambda step: step * ROLLOUT  # noqa: E731
    if c.side == "ours":
        from llm_recipe.config import ComputeConfig, PPOConfig, SamplingConfig
        from llm_recipe.infer.reward import RewardScorer
        from llm_recipe.tokenizer.chat_formats import get_chat_format
        from llm_recipe.train.ppo import load_critic, run_ppo
        from llm_recipe.train.rl_loop import RLSetup

        rm.eval().requires_grad_(False)
        s = RLSetup.build(policy, tok, RewardScorer(rm, tok, get_chat_format("chatml", tok)), data["prompts"], [])
        cfg = PPOConfig(iterations=args.iterations, rollout_batch_size=ROLLOUT, lr=1e-5, success_prefix=None,
                        sampling=SamplingConfig(max_new_tokens=RESP_LEN, temperature=1.0), minibatch_size=MINIBATCH,
                        epochs=EPOCHS, value_model="reward_model", kl_estimator="k1", kl_coef=0.05,
                        compute=ComputeConfig(mixed_precision="bf16" if c.precision == "bf16-autocast" else "no",
                                              dtype=DTYPE[c.precision]))

        def tick(tr):
            if tr.state["step"] == args.warmup:
                clock.mark("start", samples(args.warmup))

        with tempfile.TemporaryDirectory() as d:
            run_ppo(s, cfg, Path(d) / "ours_ppo", critic=load_critic(work / "rm").to(dtype), save=False,
                    callbacks=[tick])
        clock.mark("end", samples(args.iterations))
        return {}
    import trl
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    assert trl.__version__ == "1.12.0", trl.__version__

    class Tick(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step in (args.warmup, args.iterations):
                clock.mark("start" if state.global_step == args.warmup else "end", samples(state.global_step))

    ref = type(policy).from_pretrained(work / "policy").to(dtype)
    value = type(rm).from_pretrained(work / "rm", num_labels=1).to(dtype)
    with tempfile.TemporaryDirectory() as d:
        targs = PPOConfig(output_dir=d, per_device_train_batch_size=MINIBATCH, gradient_accumulation_steps=1,
                          num_mini_batches=ROLLOUT // MINIBATCH, num_ppo_epochs=EPOCHS,
                          total_episodes=ROLLOUT * args.iterations, response_length=RESP_LEN, temperature=1.0,
                          learning_rate=1e-5, kl_coef=0.05, kl_estimator="k1",
                          stop_token_id=tok.convert_tokens_to_ids("<|im_end|>"), report_to="none", use_cpu=True,
                          bf16=c.precision == "bf16-autocast", local_rollout_forward_batch_size=ROLLOUT,
                          num_sample_generations=0, save_strategy="no", logging_steps=10**6, disable_tqdm=True,
                          **c.settings)
        trainer = PPOTrainer(args=targs, processing_class=tok, model=policy, ref_model=ref, reward_model=rm,
                             train_dataset=Dataset.from_dict({"input_ids": data["ids"]}), value_model=value,
                             callbacks=[Tick()])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return {}


def main_ppo(argv: list[str]) -> None:
    import harness

    ap = argparse.ArgumentParser(description="PPO throughput grid: ours vs TRL 1.12 PPOTrainer")
    ap.add_argument("--algo", default="ppo")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    harness.add_args(ap, "ppo_throughput")
    args = ap.parse_args(argv)
    if not args.worker and not TRL112_PY.exists():
        raise SystemExit(f"{TRL112_PY} missing: python3 -m venv .venv-bench-trl112, add a .pth to the main venv's "
                         "site-packages, pip install --no-deps trl==1.12.0")

    def build_fixture(args, work: Path) -> dict:
        prepare(work, args.preset)
        fps, setup = ppo_flops(work)
        return {**setup, "flops_per_sample": fps, "rollout": ROLLOUT, "minibatch": MINIBATCH, "epochs": EPOCHS,
                "response_tokens": RESP_LEN}

    def describe(setup: dict) -> dict:
        tokens = int(ROLLOUT * (setup["mean_prompt_tokens"] + RESP_LEN))
        return {"flops_per_unit": setup["flops_per_sample"], "roof_shapes": setup["shapes"],
                "roof_tokens": (tokens, ROLLOUT * RESP_LEN)}

    harness.main_with_fixture(
        args, argv, build_fixture, describe, name=args.name, title=f"PPO ({args.preset}, {args.iterations} "
        f"iterations x {ROLLOUT} samples of {RESP_LEN} tokens, separate value model, {EPOCHS} epochs of "
        f"minibatch {MINIBATCH})", unit="samples/s", script=__file__, contenders=ppo_contenders(), work=ppo_work,
        flops_formula="per sample (prompt + response): generation, reward model, reference and value forward "
                      "1x each, then per PPO epoch policy and value 3x forward (LM head at response tokens only)")


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    argv = sys.argv[1:]
    if "--algo" in argv and argv[argv.index("--algo") + 1] == "ppo":
        main_ppo(argv)
    else:
        main_grpo(argv)


if __name__ == "__main__":
    main()
