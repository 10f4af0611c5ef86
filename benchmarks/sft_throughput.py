"""SFT training throughput: ours vs TRL's SFTTrainer, same model, data, batch size and max length.

Contenders (each trains `--steps` optimizer steps after `--warmup` untimed ones, from the same
initial weights, on the same bundled conversations rendered with the same ChatML template):
  ours packed           llm_recipe's SFT objective on the shared loop, packed rows (the default)
  ours grouped          ... without packing: length-grouped padded batches
  TRL defaults          SFTTrainer as shipped (assistant_only_loss=True, everything else default:
                        padded batches, bf16 autocast, gradient checkpointing)
  TRL packing           packing=True (BFD, which turns on padding_free), otherwise defaults
  TRL packing fp32      packing=True, bf16=False, gradient_checkpointing=False (its fastest here)
  TRL padded fp32       bf16=False, gradient_checkpointing=False
Throughput = real (non-padding) tokens per second of training, counted from the batches each
trainer actually consumed. Rounds are interleaved and the median per contender is reported,
because this machine is shared. Goal (issue #5): >= 1.3x TRL defaults, >= 1.0x TRL's best.

    python benchmarks/sft_throughput.py [--model runs/demo/pretrain/model] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from llm_recipe.config import SFTConfig  # noqa: E402
from llm_recipe.demo.sft_set import generate_bundled_sft  # noqa: E402
from llm_recipe.models.loading import load_causal_lm  # noqa: E402
from llm_recipe.models.presets import build_preset_model  # noqa: E402
from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format  # noqa: E402
from llm_recipe.train.loop import Trainer  # noqa: E402
from llm_recipe.train.sft import SFTObjective  # noqa: E402
from llm_recipe.train.sft_data import (  # noqa: E402
    DataStats,
    conversations_from_records,
    pack_examples,
    single_rows,
    tokenize_examples,
)


def load_setup(args):
    if args.model and Path(args.model).exists():
        tok = AutoTokenizer.from_pretrained(args.model)

        def make_model():
            return load_causal_lm(args.model)
    else:  # no demo model: a tokenizer on the sample corpus and a fresh tiny model
        from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files
        from llm_recipe.tokenizer.train import train_bpe_tokenizer
        from llm_recipe.train.pretrain import read_documents

        docs, _ = read_documents(sample_corpus_files(generate_sample_corpus(docs_per_source=300)))
        tok = train_bpe_tokenizer((t for _, t in docs), vocab_size=4096)

        def make_model():
            return build_preset_model("tiny", tok, seed=0)
    apply_chat_format(tok, FORMATS["chatml"])
    records = generate_bundled_sft(args.examples, seed=0)
    convs = conversations_from_records(((str(i), r) for i, r in enumerate(records)), DataStats())
    # Both sides get the same conversations: the ones within max_length, so nobody truncates.
    fits = [c for c in convs if tokenize_examples([c], tok, FORMATS["chatml"], max_length=args.max_length)]
    if len(fits) < len(convs):
        print(f"  {len(convs) - len(fits)} of {len(convs)} conversations exceed --max-length {args.max_length}: "
              "left out on both sides", file=sys.stderr)
    examples = tokenize_examples(fits, tok, FORMATS["chatml"], max_length=args.max_length)
    return tok, make_model, examples, [c.messages for c in fits]


def bench_ours(args, tok, make_model, examples, packing: bool, bf16: bool = False) -> float:
    from llm_recipe.config import ComputeConfig

    rows = pack_examples(examples, args.max_length) if packing else single_rows(examples)
    cfg = SFTConfig(max_steps=args.warmup + args.steps, batch_size=args.batch, lr=1e-3, warmup_steps=2,
                    log_every=10**6, eval_every=10**6, save_every=None, packing=packing,
                    compute=ComputeConfig(mixed_precision="bf16" if bf16 else "no"))
    marks = {}

    def clock(tr):
        if tr.state.step in (args.warmup, args.warmup + args.steps):
            marks[tr.state.step] = (time.perf_counter(), tr.state.tokens)

    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(make_model(), SFTObjective(tok.pad_token_id), rows, cfg, d, seed=0, callbacks=[clock],
                          group_by_length=None if packing else [len(r) for r in rows])
        trainer.fit()
    (t0, n0), (t1, n1) = marks[args.warmup], marks[args.warmup + args.steps]
    return (n1 - n0) / (t1 - t0)


def bench_trl(args, tok, make_model, convs, **overrides) -> float:
    import datasets
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    counted = {"tokens": 0}
    marks = {}

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step in (args.warmup, args.warmup + args.steps):
                marks[state.global_step] = (time.perf_counter(), counted["tokens"])

    with tempfile.TemporaryDirectory() as d:
        targs = TRLConfig(output_dir=d, max_length=args.max_length, per_device_train_batch_size=args.batch,
                          learning_rate=1e-3, max_steps=args.warmup + args.steps, assistant_only_loss=True,
                          use_cpu=True, report_to=[], save_strategy="no", logging_steps=10**6, seed=0,
                          dataloader_num_workers=0, disable_tqdm=True, **overrides)
        trainer = SFTTrainer(model=make_model(), args=targs, processing_class=tok, callbacks=[Clock()],
                             train_dataset=datasets.Dataset.from_list([{"messages": c} for c in convs]))
        trainer.remove_callback(PrinterCallback)  # no log dict printed at the end of each run
        inner = trainer.data_collator

        def counting(examples):  # real tokens of every example (or packed row) the trainer consumes
            counted["tokens"] += sum(len(e["input_ids"]) for e in examples)
            return inner(examples)

        trainer.data_collator = counting
        trainer.train()
    (t0, n0), (t1, n1) = marks[args.warmup], marks[args.warmup + args.steps]
    return (n1 - n0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/demo/pretrain/model", help="model dir (else a fresh tiny model)")
    ap.add_argument("--examples", type=int, default=1600)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=None, help="comma-separated contender names (debugging)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    tok, make_model, examples, convs = load_setup(args)
    print(f"model {args.model if Path(args.model).exists() else 'fresh tiny'}; {len(examples)} conversations, "
          f"{sum(len(e) for e in examples)} tokens; batch {args.batch}, max_length {args.max_length}, "
          f"{args.steps} timed steps, {args.threads} threads, load average {os.getloadavg()[0]:.1f}")
    contenders = {
        "ours packed": lambda: bench_ours(args, tok, make_model, examples, packing=True),
        "ours grouped": lambda: bench_ours(args, tok, make_model, examples, packing=False),
        "TRL defaults": lambda: bench_trl(args, tok, make_model, convs),
        "TRL packing": lambda: bench_trl(args, tok, make_model, convs, packing=True),
        "TRL packing fp32": lambda: bench_trl(args, tok, make_model, convs, packing=True, bf16=False,
                                              gradient_checkpointing=False),
        "TRL padded fp32": lambda: bench_trl(args, tok, make_model, convs, bf16=False, gradient_checkpointing=False),
    }
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k in args.only.split(",")}
    results: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(args.rounds):
        for name, fn in contenders.items():
            results[name].append(fn())
            print(f"  round {r + 1} {name:<18} {results[name][-1]:>9.0f} tok/s", flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\n{'contender':<20}{'tokens/s':>10}   (median of {args.rounds})")
    for k, v in med.items():
        print(f"{k:<20}{v:>10.0f}")
    if "ours packed" in med:
        ours = med["ours packed"]
        trl = {k: v for k, v in med.items() if k.startswith("TRL")}
        if "TRL defaults" in trl:
            print(f"\nours packed / TRL defaults = {ours / trl['TRL defaults']:.2f}x   (goal >= 1.3x)")
        if trl:
            best = max(trl, key=trl.get)
            print(f"ours packed / TRL best ({best}) = {ours / trl[best]:.2f}x   (goal >= 1.0x)")


if __name__ == "__main__":
    main()
