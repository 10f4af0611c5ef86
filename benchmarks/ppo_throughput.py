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
DTYPE = {"fp32": "float32", "bf16-autocast": "float32", "bf16-weights": "bfloat16"}


def _load(c, args):
    """The fixture's tokenizer, policy and reward model (at the contender's precision) and prompts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    work, dtype = Path(args.work), getattr(torch, DTYPE[c.precision])
    tok = AutoTokenizer.from_pretrained(work / "policy")
    policy = AutoModelForCausalLM.from_pretrained(work / "policy").to(dtype)
    rm = AutoModelForSequenceClassification.from_pretrained(work / "rm", num_labels=1).to(dtype)
    data = json.loads((work / "prompts.json").read_text())
    return tok, policy, rm, data, dtype


def _run_ours(c, args, clock, tok, policy, rm, data, train) -> None:
    """Our side: `train(setup, common config fields, out_dir, callbacks)`, timed from the end of
    iteration `--warmup` to the end."""
    from llm_recipe.config import ComputeConfig, SamplingConfig
    from llm_recipe.infer.reward import RewardScorer
    from llm_recipe.tokenizer.chat_formats import get_chat_format
    from llm_recipe.train.rl_loop import RLSetup

    rm.eval().requires_grad_(False)
    s = RLSetup.build(policy, tok, RewardScorer(rm, tok, get_chat_format("chatml", tok)), data["prompts"], [])
    common = dict(iterations=args.iterations, rollout_batch_size=ROLLOUT, lr=1e-5, success_prefix=None,
                  sampling=SamplingConfig(max_new_tokens=RESP_LEN, temperature=1.0),
                  compute=ComputeConfig(mixed_precision="bf16" if c.precision == "bf16-autocast" else "no",
                                        dtype=DTYPE[c.precision]))

    def tick(tr):
        if tr.state["step"] == args.warmup:
            clock.mark("start", args.warmup * ROLLOUT)

    with tempfile.TemporaryDirectory() as d:
        train(s, common, Path(d), [tick])
    clock.mark("end", args.iterations * ROLLOUT)


def _run_trl(args, clock, make_trainer) -> None:
    """TRL's side: `make_trainer(output_dir, callbacks)`, timed from the end of step `--warmup` to the end."""
    from transformers import PrinterCallback, TrainerCallback

    class Tick(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step in (args.warmup, args.iterations):
                clock.mark("start" if state.global_step == args.warmup else "end", state.global_step * ROLLOUT)

    with tempfile.TemporaryDirectory() as d:
        trainer = make_trainer(d, [Tick()])
        trainer.remove_callback(PrinterCallback)
        trainer.train()


def _prompt_shapes(work: Path):
    """The policy's shapes (`roof.py`) and the prompts' token ids."""
    from roof import Shapes
    from transformers import AutoConfig

    return Shapes.of(AutoConfig.from_pretrained(work / "policy")), json.loads((work / "prompts.json").read_text())["ids"]


def _setup_figures(shapes, ids: list) -> dict:
    return {"shapes": vars(shapes), "prompts": len(ids), "mean_prompt_tokens": sum(map(len, ids)) / len(ids)}


def _grid_main(argv: list[str], algo: str, title: str, flops, contenders, work, flops_formula: str, **fixture) -> None:
    """The harness grid of `algo` over the shared fixture (`prepare`), MFU over `flops(work)`."""
    import harness

    ap = argparse.ArgumentParser(description=f"{algo.upper()} throughput grid: ours vs TRL")
    ap.add_argument("--algo", default=algo)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    harness.add_args(ap, f"{algo}_throughput")
    args = ap.parse_args(argv)

    def build_fixture(args, folder: Path) -> dict:
        prepare(folder, args.preset)
        fps, setup = flops(folder)
        return {**setup, "flops_per_sample": fps, "rollout": ROLLOUT, "response_tokens": RESP_LEN, **fixture}

    def describe(setup: dict) -> dict:
        tokens = int(ROLLOUT * (setup["mean_prompt_tokens"] + RESP_LEN))
        return {"flops_per_unit": setup["flops_per_sample"], "roof_shapes": setup["shapes"],
                "roof_tokens": (tokens, ROLLOUT * RESP_LEN)}

    harness.main_with_fixture(
        args, argv, build_fixture, describe, name=args.name,
        title=f"{algo.upper()} ({args.preset}, {args.iterations} iterations x {ROLLOUT} samples of {RESP_LEN} tokens, "
              f"{title})", unit="samples/s", script=__file__, contenders=contenders, work=work,
        flops_formula=flops_formula)


# ---- GRPO on the harness grid ---------------------------------------------------------------------
def grpo_contenders() -> list:
    from harness import gc, grid

    return grid("TRL", {"gradient_checkpointing": (True, False)},
                {"precision": "bf16-autocast", "gradient_checkpointing": True},
                lambda prec, kw: gc(kw["gradient_checkpointing"]))


def grpo_flops(work: Path) -> tuple[float, dict]:
    """Model FLOPs per sample: per group of G, the prompt once and G responses of RESP_LEN after it,
    for generation (LM head at response tokens), the reward model (no LM head), the reference (1x
    forward) and the update (3x forward) (`roof.py`)."""
    from roof import forward_flops

    shapes, ids = _prompt_shapes(work)
    per_group = []
    for p in (len(x) for x in ids):
        lm = forward_flops(shapes, p) + GROUP * forward_flops(shapes, RESP_LEN, p, RESP_LEN)
        rm = forward_flops(shapes, p) + GROUP * forward_flops(shapes, RESP_LEN, p)
        per_group.append((1 + 1 + 3) * lm + rm)
    return sum(per_group) / len(per_group) / GROUP, _setup_figures(shapes, ids)


def grpo_work(c, args, clock) -> dict:
    tok, policy, rm, data, _ = _load(c, args)
    if c.side == "ours":
        from llm_recipe.config import GRPOConfig
        from llm_recipe.train.grpo import run_grpo

        _run_ours(c, args, clock, tok, policy, rm, data, lambda s, common, out, callbacks: run_grpo(
            s, GRPOConfig(**common, minibatch_size=ROLLOUT, epochs=1, group_size=GROUP, beta=0.04), out / "ours_grpo",
            save=False, callbacks=callbacks))
        return {}
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def make_trainer(out: str, callbacks: list):
        targs = GRPOConfig(output_dir=out, per_device_train_batch_size=ROLLOUT, gradient_accumulation_steps=1,
                           num_generations=GROUP, max_completion_length=RESP_LEN, max_steps=args.iterations,
                           temperature=1.0, learning_rate=1e-5, beta=0.04, loss_type="grpo", report_to="none",
                           use_cpu=True, bf16=c.precision == "bf16-autocast", save_strategy="no", logging_steps=10**6,
                           disable_tqdm=True, **c.settings)
        return GRPOTrainer(model=policy, reward_funcs=rm, args=targs, processing_class=tok,
                           train_dataset=Dataset.from_dict({"prompt": [tok.decode(i) for i in data["ids"]]}),
                           reward_processing_classes=tok, callbacks=callbacks)

    _run_trl(args, clock, make_trainer)
    return {}


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
    from roof import forward_flops

    shapes, ids = _prompt_shapes(work)
    per = []
    for p in (len(x) for x in ids):
        lm, body = forward_flops(shapes, p + RESP_LEN, 0, RESP_LEN), forward_flops(shapes, p + RESP_LEN)
        per.append(2 * lm + 2 * body + EPOCHS * 3 * (lm + body))
    return sum(per) / len(per), _setup_figures(shapes, ids)


def ppo_work(c, args, clock) -> dict:
    work = Path(args.work)
    tok, policy, rm, data, dtype = _load(c, args)
    if c.side == "ours":
        from llm_recipe.config import PPOConfig
        from llm_recipe.train.ppo import load_critic, run_ppo

        _run_ours(c, args, clock, tok, policy, rm, data, lambda s, common, out, callbacks: run_ppo(
            s, PPOConfig(**common, minibatch_size=MINIBATCH, epochs=EPOCHS, value_model="reward_model",
                         kl_estimator="k1", kl_coef=0.05), out / "ours_ppo",
            critic=load_critic(work / "rm").to(dtype), save=False, callbacks=callbacks))
        return {}
    import trl
    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    assert trl.__version__ == "1.12.0", trl.__version__
    ref = type(policy).from_pretrained(work / "policy").to(dtype)
    value = type(rm).from_pretrained(work / "rm", num_labels=1).to(dtype)

    def make_trainer(out: str, callbacks: list):
        # TRL 1.12's rollout per step is per_device_train_batch_size x gradient_accumulation_steps, split into
        # num_mini_batches optimizer steps (each one micro batch here): rollout ROLLOUT, minibatch MINIBATCH
        targs = PPOConfig(output_dir=out, per_device_train_batch_size=ROLLOUT, gradient_accumulation_steps=1,
                          num_mini_batches=ROLLOUT // MINIBATCH, num_ppo_epochs=EPOCHS,
                          total_episodes=ROLLOUT * args.iterations, response_length=RESP_LEN, temperature=1.0,
                          learning_rate=1e-5, kl_coef=0.05, kl_estimator="k1",
                          stop_token_id=tok.convert_tokens_to_ids("<|im_end|>"), report_to="none", use_cpu=True,
                          bf16=c.precision == "bf16-autocast", local_rollout_forward_batch_size=ROLLOUT,
                          num_sample_generations=0, save_strategy="no", logging_steps=10**6, disable_tqdm=True,
                          **c.settings)
        trainer = PPOTrainer(args=targs, processing_class=tok, model=policy, ref_model=ref, reward_model=rm,
                             train_dataset=Dataset.from_dict({"input_ids": data["ids"]}), value_model=value,
                             callbacks=callbacks)
        # the timed window counts ROLLOUT samples per step: hold TRL to it
        sizes = (trainer.args.batch_size, trainer.args.local_mini_batch_size, trainer.args.num_total_batches)
        assert sizes == (ROLLOUT, MINIBATCH, args.iterations), sizes
        return trainer

    _run_trl(args, clock, make_trainer)
    return {}


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    argv = sys.argv[1:]
    if "--algo" in argv and argv[argv.index("--algo") + 1] == "ppo":
        if "--worker" not in argv and not TRL112_PY.exists():
            raise SystemExit(f"{TRL112_PY} missing: python3 -m venv .venv-bench-trl112, add a .pth to the main venv's "
                             "site-packages, pip install --no-deps trl==1.12.0")
        _grid_main(argv, "ppo", f"separate value model, {EPOCHS} epochs of minibatch {MINIBATCH}", ppo_flops,
                   ppo_contenders(), ppo_work, "per sample (prompt + response): generation, reward model, reference "
                   "and value forward 1x each, then per PPO epoch policy and value 3x forward (LM head at response "
                   "tokens only)", minibatch=MINIBATCH, epochs=EPOCHS)
    else:
        _grid_main(argv, "grpo", f"G={GROUP}", grpo_flops, grpo_contenders(), grpo_work,
                   "per sample (groups of G, the prompt once): generation 1x + reference 1x + update 3x forward "
                   "with the LM head at response tokens, + the reward model 1x forward (benchmarks/roof.py)",
                   group=GROUP)


if __name__ == "__main__":
    main()
