"""What a run prints for a person: one `[llm-recipe] ...` line per event, flushed at once.

Only the main process prints (under `accelerate launch` / `torchrun` every rank runs the same
code; N copies of each line would bury the one that matters). Progress bars are tqdm's.
"""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """Rank 0 of a multi-process launch (torchrun/accelerate set RANK), or a plain process."""
    return int(os.environ.get("RANK", "0")) == 0


def log(msg: str) -> None:
    if is_main_process():
        print(f"[llm-recipe] {msg}", flush=True)
