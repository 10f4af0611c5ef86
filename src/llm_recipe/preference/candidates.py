"""Candidate generation: k sampled responses per prompt from a (SFT) model, to be labeled.

Sample j uses temperature `temperatures[j % len(temperatures)]`, so [0.7, 1.2] gives one
low-temperature ("chosen"-style) and one high-temperature ("rejected"-style) candidate per
prompt; the labeler decides which is actually better. Sampling is the project's sampler
(`infer.generate.generate_chat`): seeded per (seed, sample j, prompt), KV cache, top-k/top-p,
stops at the chat format's end of turn.

Output records: {"prompt", "responses": [...], "temperatures": [...], "finish_reasons": [...]}
(plus "reference" when the prompt file has one, for BLEU/ROUGE rules).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from ..config import CandidateConfig
from ..files import open_text_bytes
from ..infer.generate import generate_chat
from ..models.reward_io import reward_format
from ..seeds import seed_for
from .records import InvalidRecord, SkipLog, check_prompt, iter_records


def read_prompts(files: Sequence[str | os.PathLike], log: SkipLog | None = None) -> list[dict]:
    """Prompts from .txt (one per non-empty line) or any record source (JSONL, Parquet, CSV, a
    `datasets` folder, a hub name: 'prompt' as text or messages, optional 'reference'). Returns
    [{"prompt", "reference"?, "where"}]; bad lines are counted in `log`."""
    log = log if log is not None else SkipLog()
    out = []
    for f in files:
        path = Path(f)
        if path.name.removesuffix(".gz").removesuffix(".zst").endswith(".txt"):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: prompt file not found")
            with open_text_bytes(path) as fh:
                for lineno, raw in enumerate(fh, start=1):
                    try:
                        text = raw.decode("utf-8").rstrip("\r\n")
                    except UnicodeDecodeError:
                        log.skip("not_utf8", f"{path}:{lineno}")
                        continue
                    if text.strip():
                        out.append({"prompt": text, "where": f"{path}:{lineno}"})
                        log.kept += 1
            continue
        for where, rec in iter_records([path], log, "prompt"):
            if "prompt" not in rec:
                log.skip("missing_field", where, "prompt")
                continue
            try:
                item = {"prompt": check_prompt(rec["prompt"]), "where": where}
            except InvalidRecord as e:
                log.skip(e.reason, where, e.detail)
                continue
            if isinstance(rec.get("reference"), str):
                item["reference"] = rec["reference"]
            out.append(item)
            log.kept += 1
    return out


def generate_candidates(model, tokenizer, prompts: Sequence[dict], cfg: CandidateConfig, seed: int = 0) -> list[dict]:
    """k responses for each prompt item (as returned by `read_prompts`)."""
    fmt = reward_format(tokenizer, cfg.chat_format)  # the model's own format (Alpaca if it has none)
    samplings = [cfg.sampling_of(j) for j in range(cfg.k)]
    temps = [sp.temperature for sp in samplings]
    columns = []
    for j, sp in enumerate(tqdm(samplings, desc="candidates", leave=False, disable=None)):
        columns.append(generate_chat(model, tokenizer, [p["prompt"] for p in prompts], sp,
                                     seed=seed_for("candidate_sampling", seed, j), chat_format=fmt.name))
    out = []
    for i, p in enumerate(prompts):
        rec = {"prompt": p["prompt"], "responses": [col[i].text for col in columns], "temperatures": temps,
               "finish_reasons": [col[i].finish_reason for col in columns]}
        if "reference" in p:
            rec["reference"] = p["reference"]
        out.append(rec)
    return out
