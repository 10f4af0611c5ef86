"""SFT training throughput: ours vs TRL's SFTTrainer at every precision, against TRL's best setting.

Same model and initial weights, the same conversations (bundled JA/EN, ChatML, only those within
--max-length on both sides: nobody truncates), assistant-only loss, batch size, learning rate.
Throughput = real (non-padding) tokens trained per second between the end of step `--warmup` and
the end of step `--warmup + --steps`, counted from the batches each trainer actually consumed.

Grid (`benchmarks/harness.py` runs it: own process per run, interleaved repeats, pruning rule):
  ours  packed rows (the default), at fp32 | bf16 autocast (`compute.mixed_precision: bf16`) |
        bf16 weights (`compute.dtype: bfloat16`)
  TRL   the same three precisions (bf16=True | model in bfloat16) x gradient checkpointing on/off x
        padded | packing (BFD, padding-free) | padding_free without packing; its defaults are bf16
        autocast, checkpointing on, padded. use_liger_kernel: liger-kernel installs from PyPI, but its
        Triton kernels need a GPU: not on this CPU.
  compile  at bf16 autocast: ours with `compute.compile` (torch.compile), and TRL's best setting of
        round 1 with `torch_compile=True`; the compilation falls in the --warmup steps (untimed: the
        throughput of a long run; each run's first-steps time is in its JSON).

    python benchmarks/sft_throughput.py [--model tiny|HF-DIR] [--steps 20] [--batch 8] [--max-length 256]
    SmolLM2-135M-Instruct: benchmarks/real_model.py (this grid on it)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Contender  # noqa: E402

DTYPE = {"fp32": "float32", "bf16-autocast": "float32", "bf16-weights": "bfloat16"}
LAYOUTS = {"padded": {}, "packing": {"packing": True}, "padding_free": {"padding_free": True}}


def contenders() -> list[Contender]:
    grid = harness.grid("TRL", {"gradient_checkpointing": (True, False), "layout": tuple(LAYOUTS)},
                        {"precision": "bf16-autocast", "gradient_checkpointing": True, "layout": "padded"},
                        lambda prec, kw: f"{harness.gc(kw['gradient_checkpointing'])} {kw['layout']}")
    return [*grid, Contender("ours bf16-autocast compile", "ours", "bf16-autocast", {"compile": True})]


def with_compile(best: list[Contender]) -> list[Contender]:
    """torch.compile on both sides at bf16 autocast: TRL's (`torch_compile=True`) on its best setting of round 1."""
    return [Contender(f"{c.name} torch_compile", "peer", c.precision, {**c.settings, "torch_compile": True})
            for c in best if c.precision == "bf16-autocast"]


def load_setup(args):
    """Tokenizer (ChatML), a model factory, our tokenized examples and the same conversations for TRL."""
    import torch
    from transformers import AutoTokenizer

    from llm_recipe.demo.sft_set import generate_bundled_sft
    from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format
    from llm_recipe.train.sft_data import DataStats, conversations_from_records, tokenize_examples

    if args.model != "tiny":
        from llm_recipe.models.loading import load_causal_lm

        tok = AutoTokenizer.from_pretrained(args.model)

        def make_model(dtype="float32"):
            return load_causal_lm(args.model, dtype)
    else:  # a tokenizer on the sample corpus and a fresh tiny model
        from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files
        from llm_recipe.models.presets import build_preset_model
        from llm_recipe.tokenizer.train import train_bpe_tokenizer
        from llm_recipe.train.pretrain import read_documents

        with tempfile.TemporaryDirectory() as d:
            files = sample_corpus_files(generate_sample_corpus(Path(d), docs_per_source=300, seed=0))
            docs, _ = read_documents(files)
        tok = train_bpe_tokenizer((t for _, t in docs), vocab_size=4096)

        def make_model(dtype="float32"):
            return build_preset_model("tiny", tok, seed=0).to(getattr(torch, dtype))
    apply_chat_format(tok, FORMATS["chatml"])
    records = generate_bundled_sft(args.examples, seed=0)
    convs = conversations_from_records(((str(i), r) for i, r in enumerate(records)), DataStats())
    examples = tokenize_examples(convs, tok, FORMATS["chatml"], max_length=10**6)
    fits = [i for i, e in enumerate(examples) if len(e) <= args.max_length]  # nobody truncates
    return tok, make_model, [examples[i] for i in fits], [convs[i].messages for i in fits]


def flops_per_token(args) -> tuple[float, dict]:
    """Model FLOPs per real token over the data set (`roof.train_flops`: LM head at trained tokens)."""
    from roof import Shapes, train_flops

    tok, make_model, examples, _ = load_setup(args)
    shapes = Shapes.of(make_model().config)
    total = sum(train_flops(shapes, len(e), head=e.n_trained) for e in examples)
    tokens = sum(len(e) for e in examples)
    trained = sum(e.n_trained for e in examples)
    return total / tokens, {"conversations": len(examples), "tokens": tokens, "trained_tokens": trained,
                            "shapes": vars(shapes)}


def work(c: Contender, args, clock: harness.Clock) -> dict:
    tok, make_model, examples, convs = load_setup(args)
    model = make_model(DTYPE[c.precision])
    if c.side == "ours":
        return bench_ours(args, tok, model, examples, c, clock)
    return bench_trl(args, tok, model, convs, c, clock)


def bench_ours(args, tok, model, examples, c: Contender, clock) -> dict:
    from llm_recipe.config import ComputeConfig, SFTConfig
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.sft import SFTObjective
    from llm_recipe.train.sft_data import pack_examples

    rows = pack_examples(examples, args.max_length)
    cfg = SFTConfig(max_steps=args.warmup + args.steps, batch_size=args.batch, lr=args.lr, warmup_steps=2,
                    log_every=10**6, eval_every=10**6, save_every=None, packing=True,
                    compute=ComputeConfig(mixed_precision="bf16" if c.precision == "bf16-autocast" else "no",
                                          dtype=DTYPE[c.precision], compile=c.settings.get("compile", False)))

    def tick(tr):
        if tr.state.step in (args.warmup, args.warmup + args.steps):
            clock.mark("start" if tr.state.step == args.warmup else "end", tr.state.tokens)

    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(model, SFTObjective(tok.pad_token_id), rows, cfg, d, seed=0, callbacks=[tick])
        clock.mark("begin", 0)
        trainer.fit()
    return {"rows": len(rows)}


def bench_trl(args, tok, model, convs, c: Contender, clock) -> dict:
    import datasets
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    datasets.disable_progress_bars()
    counted = {"tokens": 0}

    class Tick(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step in (args.warmup, args.warmup + args.steps):
                clock.mark("start" if state.global_step == args.warmup else "end", counted["tokens"])

    kw = {"gradient_checkpointing": c.settings["gradient_checkpointing"], **LAYOUTS[c.settings["layout"]],
          "torch_compile": c.settings.get("torch_compile", False)}
    with tempfile.TemporaryDirectory() as d:
        targs = TRLConfig(output_dir=d, max_length=None if kw.get("padding_free") and not kw.get("packing")
                          else args.max_length, per_device_train_batch_size=args.batch, learning_rate=args.lr,
                          max_steps=args.warmup + args.steps, assistant_only_loss=True, use_cpu=True, report_to=[],
                          save_strategy="no", logging_steps=10**6, seed=0, dataloader_num_workers=0,
                          disable_tqdm=True, bf16=c.precision == "bf16-autocast", **kw)
        trainer = SFTTrainer(model=model, args=targs, processing_class=tok, callbacks=[Tick()],
                             train_dataset=datasets.Dataset.from_list([{"messages": m} for m in convs]))
        trainer.remove_callback(PrinterCallback)
        inner = trainer.data_collator

        def counting(examples):  # real tokens of every example (or packed row) the trainer consumes
            counted["tokens"] += sum(len(e["input_ids"]) for e in examples)
            return inner(examples)

        trainer.data_collator = counting
        clock.mark("begin", 0)
        trainer.train()
    return {}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="tiny (a fresh preset model) or an HF model folder")
    ap.add_argument("--examples", type=int, default=1600)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    harness.add_args(ap, "sft_throughput")
    return ap


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    fpt = setup = None
    if not args.worker:
        fpt, setup = flops_per_token(args)
        print(f"{setup['conversations']} conversations, {setup['tokens']} tokens ({setup['trained_tokens']} trained); "
              f"model FLOPs {fpt / 1e6:.1f} MFLOP per token")
    trained = setup["trained_tokens"] / setup["tokens"] if setup else 1.0
    tokens = args.batch * args.max_length
    harness.main(name=args.name, title=f"SFT ({args.model}, batch {args.batch} x {args.max_length})", unit="tokens/s",
                 script=__file__, args=args, argv=argv, contenders=contenders(), work=work, setup=setup, derive=with_compile,
                 flops_per_unit=fpt, roof_shapes=setup and setup["shapes"], roof_tokens=(tokens, int(tokens * trained)),
                 flops_formula="3 x forward per real token, dataset mean: 2*P_linear + attention 4*L*h*d*(causal "
                               "positions) + LM head 2*D*V at assistant (trained) tokens (benchmarks/roof.py)")


if __name__ == "__main__":
    main()
