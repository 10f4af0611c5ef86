# %% [markdown]
# # SFT -> DPO -> evaluate with the Python API
#
# A notebook-style script (cells split by `# %%`; VS Code and Jupytext open it as a notebook). It
# builds a tiny Llama-style model on the bundled corpus, fine-tunes it on chat records given as a
# list of dicts, aligns it with DPO on preference pairs given as a `datasets.Dataset` (TRL's
# explicit-prompt format), and evaluates both against their references. CPU, offline, a few
# minutes with the defaults below; `EXAMPLE_STEPS=3` makes it a seconds-long smoke run (the test
# suite runs it that way: tests/test_api.py).
#
#     python examples/sft_dpo_eval.py [RUN_DIR]

# %%
import os
import sys
import tempfile
from pathlib import Path

import datasets

import llm_recipe

STEPS = int(os.environ.get("EXAMPLE_STEPS", "60"))
SMOKE = STEPS < 10  # the test suite's size: everything smaller
RUN = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="llm-recipe-example-"))

# %% [markdown]
# ## A tiny base model
# A byte-level BPE tokenizer trained on the bundled JA/EN sample corpus and a freshly initialised
# `micro` preset (a plain `LlamaForCausalLM`). Any causal LM folder or hub id works in its place.

# %%
from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files  # noqa: E402
from llm_recipe.models.presets import build_preset_model  # noqa: E402
from llm_recipe.tokenizer.train import train_and_save  # noqa: E402

corpus = generate_sample_corpus(RUN / "corpus", docs_per_source=20 if SMOKE else 60, seed=0)
texts = [line for f in sample_corpus_files(corpus) for line in f.read_text(encoding="utf-8").splitlines()]
tokenizer = train_and_save(texts, RUN / "tokenizer", vocab_size=500 if SMOKE else 800)
base = build_preset_model("micro", tokenizer, seed=0)  # a loaded model: the API saves it with its tokenizer

# %% [markdown]
# ## SFT on a list of dicts
# TRL's `messages` format (any TRL format works: `text`, prompt/completion, tool calls ...).
# Keyword arguments are fields of the `sft:` section; TRL's names are read as ours with a note.

# %%
from llm_recipe.config import SFTConfig  # noqa: E402
from llm_recipe.demo.sft_set import sft_records  # noqa: E402

chats = [rec for _, rec in sft_records(SFTConfig(bundled_examples=160 if SMOKE else 400), seed=0)]
sft = llm_recipe.sft(base, chats, tokenizer=tokenizer, output_dir=RUN / "run", max_steps=STEPS,
                     learning_rate=3e-3, per_device_train_batch_size=8, max_length=192,
                     overrides={"sft.eval_every": max(STEPS // 2, 1), "sft.demo_prompts": ["What is the capital of Japan?"],
                                "generate.sampling.max_new_tokens": 16})
print("SFT model:", sft.model_dir)
print("SFT held-out eval loss:", round(sft.metrics.get("eval_loss", float("nan")), 3), "| figures:", sft.figures)

# %% [markdown]
# ## DPO on a `datasets.Dataset`
# Pairs that prefer answers starting with "Let me explain." (the project's style demo), in TRL's
# explicit-prompt format.

# %%
turns = [[m for m in c.get("messages", []) if m["role"] != "system"] for c in chats]
single = [t for t in turns if [m["role"] for m in t] == ["user", "assistant"]]
pairs = datasets.Dataset.from_list([{"prompt": t[0]["content"], "chosen": "Let me explain. " + t[1]["content"],
                                     "rejected": t[1]["content"]} for t in single[:160]])
assert len(pairs) >= 40, len(pairs)
aligned = llm_recipe.dpo(sft.model_dir, pairs, output_dir=RUN / "run", max_steps=max(STEPS // 2, 2), beta=0.1,
                         learning_rate=5e-4, batch_size=8, eval_every=max(STEPS // 4, 1))
print("DPO model:", aligned.model_dir)
print("DPO held-out reward accuracy:", aligned.metrics.get("eval_reward_accuracy"))

# %% [markdown]
# ## Evaluate every model of the run against its reference
# SFT against the base, DPO against SFT: win rates, KL, safety, sycophancy, format.

# %%
report = llm_recipe.evaluate(RUN / "run", n_prompts=4 if SMOKE else 16, judge_model=None,
                             overrides={"eval.sampling.max_new_tokens": 24, "eval.kl_max_new_tokens": 12,
                                        "eval.bootstrap": 200})
for name, row in report.figures.items():
    kl = row.get("kl", {})
    print(f"{name:>6} vs {row.get('reference') or '-':>6}: KL {kl.get('kl', float('nan')):.3f}, "
          f"refusal {row.get('safety', {}).get('refusal_rate')}")
print("report:", RUN / "run" / "eval" / "table.md")
