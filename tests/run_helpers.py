"""The settings that make the tiny recipe a seconds-long wiring check (shared by the run tests)."""

FAST = ["--set", "model.preset=micro", "--set", "corpus.docs_per_source=40", "--set", "tokenizer.vocab_size=600",
        "--set", "pretrain.max_steps=6", "--set", "pretrain.block_size=64", "--set", "pretrain.batch_size=4",
        "--set", "pretrain.eval_every=3", "--set", "pretrain.save_every=3", "--set", "generate.sampling.max_new_tokens=5",
        "--set", "curate.input.sample_noise_per_type=2", "--set", "curate.mixing.token_budget=12000"]
# The stages after pretraining, each cut to a few steps: this test checks the wiring, the stage
# tests check what each stage learns.
FAST_ALIGN = [f"--set={kv}" for kv in (
    "sft.bundled_examples=120", "sft.max_steps=3", "sft.max_length=128", "sft.eval_every=3", "sft.eval_batches=1",
    "rm.synthetic_pairs=40", "rm.max_steps=2", "rm.batch_size=4", "rm.eval_every=2", "rm.eval_batches=1",
    "rm.norm_samples=4", "bon.n=2", "bon.n_prompts=2", "bon.sampling.max_new_tokens=4",
    "dpo.style_pairs=24", "dpo.max_steps=2", "dpo.batch_size=4", "dpo.eval_every=2", "dpo.eval_batches=1",
    "dpo.eval_prompts=2", "dpo.max_new_tokens=4", "dpo.warmup_steps=0",
    "ppo.iterations=1", "ppo.rollout_batch_size=4", "ppo.minibatch_size=4", "ppo.n_prompts=8", "ppo.eval_prompts=2",
    "ppo.sampling.max_new_tokens=4", "ppo.epochs=1",
    # online DPO (2 rounds) and Constitutional AI are opened by these keys: tiny.yaml has neither
    "online_dpo.rounds=2", "online_dpo.prompts_per_round=6", "online_dpo.candidates.k=2",
    "online_dpo.candidates.sampling.max_new_tokens=6", "online_dpo.max_steps=2", "online_dpo.batch_size=4",
    "online_dpo.eval_every=2", "online_dpo.eval_batches=1", "online_dpo.warmup_steps=0",
    "constitutional.rounds=1", "constitutional.sampling.max_new_tokens=4")]
# The evaluation stage on a handful of prompts: the wiring and every figure, not their values (the
# small v1 sets: the default v2 sets are 222 safety prompts and 66 x 3 sycophancy turns per model).
FAST_EVAL = [f"--set={kv}" for kv in (
    "eval.n_prompts=4", "eval.sampling.max_new_tokens=8", "eval.kl_max_new_tokens=6", "eval.bootstrap=100",
    "eval.perplexity_blocks=2", "eval.safety_set=safety-v1", "eval.sycophancy_set=sycophancy-v1")]


def call_stage(stage, cfg, out=None, **artifacts):
    """Run one recipe stage (`stages.contract.run_stage`) into `out` with the given artifacts
    (sft_model=..., reward_model=...); returns the artifacts it made."""
    from pathlib import Path

    from llm_recipe.stages.context import RunContext
    from llm_recipe.stages.contract import run_stage

    if out is not None:
        cfg = cfg.model_copy(update={"output_dir": Path(out)})
    return run_stage(RunContext(cfg, artifacts={k: str(v) for k, v in artifacts.items()}), stage)
