"""Next-token pretraining (stage 2) on a corpus of documents.

corpus files -> texts (bad lines counted) -> train/val split by document id ->
tokenize -> pack into blocks -> shared `Trainer` with `CausalLMObjective` -> HF model dir.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import distributed
from ..config import ModelConfig, PretrainConfig
from ..data.packing import PackStats, pack_token_lists
from ..files import BadLine, open_text_bytes, write_json
from ..models.loading import DTYPES, load_causal_lm
from ..models.presets import build_preset_model, count_parameters
from ..record_sources import check_skips, check_source, iter_source
from ..splits import split_by_key
from ..tokenizer.extend import grow_embeddings
from .loop import StepCallback
from .shard_data import DocumentMaskedLM, documents_to_shards, pretrain_data, shard_inputs
from .training_run import Plot, Prepared, RunSpec, TrainResult, run_training


@dataclass
class ReadStats:
    files: int = 0
    documents: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    examples: list[str] = field(default_factory=list)  # first few "file:line: reason"

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < 20:
            self.examples.append(f"{where}: {reason}")


def read_documents(files: Sequence[str | os.PathLike]) -> tuple[list[tuple[str, str]], ReadStats]:
    """Read `(id, text)` pairs from record sources (`record_sources`: JSONL, Parquet, CSV, datasets
    folders, hub names; field `text`, optional `id`) or plain-text files (one document per file).
    Unusable records are skipped and counted by reason."""
    stats = ReadStats()
    docs: list[tuple[str, str]] = []
    for f in files:
        path = Path(f)
        check_source(f, "pretraining data")
        stats.files += 1
        name = path.name.removesuffix(".gz").removesuffix(".zst")
        if name.endswith(".txt") and path.is_file():
            with open_text_bytes(path) as fh:
                raw = fh.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                stats.skip("not_utf8", str(path))
                continue
            if text.strip():
                docs.append((str(path), text))
                stats.documents += 1
            else:
                stats.skip("empty_text", str(path))
            continue
        for where, rec in iter_source(f):
            if isinstance(rec, BadLine):
                stats.skip(rec.reason, where)
            elif not isinstance(rec.get("text"), str):
                stats.skip("missing_text", where)
            elif not rec["text"].strip():
                stats.skip("empty_text", where)
            else:
                docs.append((str(rec.get("id", where)), rec["text"]))
                stats.documents += 1
    return docs, stats


def usable_documents(files: Sequence[str | os.PathLike], max_bad: float,
                     report: Path | None = None) -> tuple[list[tuple[str, str]], ReadStats]:
    """`read_documents`, the skips said and checked (`record_sources.check_skips`); `report` gets the
    read statistics first, so a run that stops here still shows what it read."""
    docs, stats = read_documents(files)
    if report is not None:
        write_json(report, {"read": asdict(stats)})
    check_skips("pretraining data", stats.documents, stats.skipped, stats.examples, max_bad,
                "pretrain.max_bad_records")
    return docs, stats


def split_by_id(docs: list[tuple[str, str]], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Train/val texts, split by document id (`splits.split_by_key`): no document is on both sides.
    Tiny inputs with nothing held out still validate on one document."""
    train, val = split_by_key(docs, lambda d: d[0], val_fraction, seed)
    train_texts, val_texts = [t for _, t in train], [t for _, t in val]
    if not val_texts and len(train_texts) > 1:
        val_texts.append(train_texts.pop())
    return train_texts, val_texts


def tokenize_and_pack(texts: list[str], tokenizer, block_size: int, desc: str = "tokenize") -> tuple[np.ndarray, PackStats]:
    def token_lists():
        bs = 512
        for i in tqdm(range(0, len(texts), bs), desc=desc, leave=False, disable=len(texts) < 2048):
            yield from tokenizer(texts[i : i + bs], add_special_tokens=True)["input_ids"]

    return pack_token_lists(token_lists(), block_size, tokenizer.eos_token_id)


def document_texts(files: Sequence[str | os.PathLike]) -> list[str]:
    """The texts of a corpus's usable documents (`read_documents`)."""
    return [t for _, t in read_documents(files)[0]]


def held_out_blocks(texts: list[str], tokenizer, block_size: int) -> np.ndarray:
    """Held-out texts packed into blocks the way pretraining packs its data."""
    return tokenize_and_pack(texts, tokenizer, block_size, "tokenize held-out text")[0]


class CausalLMObjective:
    """Plain next-token cross-entropy over packed blocks (labels = inputs; the model shifts)."""

    def collate(self, blocks: list) -> dict[str, torch.Tensor]:
        # arrays, or windows from token shards (`shard_data.Window`)
        ids = torch.from_numpy(np.stack([getattr(b, "tokens", b) for b in blocks])).long()
        return {"input_ids": ids, "loss_tokens": ids[:, 1:].numel()}  # the loss is a mean over these

    def loss(self, model, batch):
        ids = batch["input_ids"]
        out = model(input_ids=ids, labels=ids)
        return out.loss, {"n_tokens": ids.numel()}


def build_model(model_cfg: ModelConfig, tokenizer, seed: int, dtype: str = "float32") -> torch.nn.Module:
    if model_cfg.name_or_path:
        model = load_causal_lm(model_cfg.name_or_path, dtype, model_cfg.trust_remote_code)
        grow_embeddings(model, tokenizer)  # an extended tokenizer's rows: the mean of their old pieces'
        return model
    return build_preset_model(model_cfg.preset, tokenizer, seed=seed).to(DTYPES[dtype])


LOSS_PLOT = Plot("loss.png", ("loss", "eval_loss"), "pretraining loss")


def _shard_data(data_files, token_data, tokenizer, cfg: PretrainConfig, out: Path, seed: int):
    """The run's windows (`shard_data`): from `token_data`, or from `data_files` tokenized once (on the
    main process, resumable) into `out/tokens`; and what reading the documents skipped."""
    read_report = None
    if token_data is None:
        if not data_files:
            raise ValueError("pretraining needs data: documents (pretrain.data) or token shards (pretrain.token_data)")
        read_report = distributed.on_main(documents_to_shards, list(data_files), out / "tokens", tokenizer, cfg, seed)
        token_data = out / "tokens"
    return pretrain_data(token_data, tokenizer, cfg), read_report


def run_pretrain(
    *,
    data_files: Sequence[str | os.PathLike] = (),
    tokenizer,
    model_cfg: ModelConfig,
    cfg: PretrainConfig,
    output_dir: str | os.PathLike,
    seed: int = 0,
    resume: bool = True,
    callbacks: Sequence[StepCallback] = (),
    full_config=None,
    token_data: str | os.PathLike | None = None,
) -> TrainResult:
    """Pretrain and save `output_dir/model` (HF directory with tokenizer). Resumes from the
    latest checkpoint in `output_dir` when `resume` is set and one exists. The data is a token
    shard folder (`token_data`), or documents (`data_files`) tokenized into `output_dir/tokens`."""
    out = Path(output_dir)
    data, read_report = _shard_data(data_files, token_data, tokenizer, cfg, out, seed)
    torch.manual_seed(seed)
    model = build_model(model_cfg, tokenizer, seed, cfg.compute.dtype)
    # The context the model was trained on (the tokenizer's 1e30 "no limit" default says nothing).
    tokenizer.model_max_length = cfg.block_size
    objective = DocumentMaskedLM() if cfg.document_mask else CausalLMObjective()
    report = {"read": read_report, **data.report, "parameters": count_parameters(model)}
    prepared = Prepared(model, tokenizer, objective, data.train, data.val if len(data.val) else None, cfg, report)
    return run_training(prepared, RunSpec("pretrain", inputs=shard_inputs(data.shards), plots=[LOSS_PLOT]), out,
                        seed=seed, resume=resume, callbacks=callbacks, full_config=full_config)
