"""Hub-ready folders, LoRA adapters kept alone or merged, and `llm-recipe export` itself.

    export_model(model_dir, out, to, dtype, adapter_only, ...)   -> report (also export_report.json)
        to=hub-folder   the weights (safetensors), config, generation config, tokenizer with its chat
                        template and a model card with Hub metadata: what `push` uploads
        to=gguf         one GGUF file (`gguf_export`), checked by loading it back with transformers
        to=ollama       the GGUF and a Modelfile beside it (`ollama`)
        adapter_only    a LoRA run's adapter with its tokenizer and card (library_name: peft),
                        loadable by peft alone (`PeftModel.from_pretrained(base, folder)`)
    merge_adapter(adapter_dir, out, base)  -> report: merged into its base, checked against the
                        unmerged model (logits), saved as a plain model folder

Every output is written to a temp folder and renamed into place (`files.write_complete`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from ..files import MARKER, write_complete, write_json
from .gguf_export import ExportError

TARGETS = ("hub-folder", "gguf", "ollama")
SKIP = {MARKER, "export_report.json"}  # bookkeeping of our folders, not part of a model


def adapter_of(model_dir: Path) -> Path:
    """The LoRA adapter folder of a model folder: itself (lora.save: adapter) or the run's adapter/."""
    for cand in (model_dir, model_dir.parent / "adapter"):
        if (cand / "adapter_config.json").is_file():
            return cand
    raise ExportError(f"{model_dir}: no LoRA adapter here or in {model_dir.parent / 'adapter'} (--adapter-only is for "
                      "runs with a lora: block)")


def _copy_model_files(src: Path, dst: Path) -> list[str]:
    files = sorted(p for p in src.iterdir() if p.is_file() and p.name not in SKIP and not p.name.startswith("."))
    for p in files:
        shutil.copy2(p, dst / p.name)
    return [p.name for p in files]


def evaluation_of(model_dir: Path) -> tuple[str, dict] | None:
    """The model's row of its run's evaluation (`eval/report.json` beside the stage folders), if any."""
    import json

    report = model_dir.resolve().parent.parent / "eval" / "report.json"
    if not report.is_file():
        return None
    models = json.loads(report.read_text(encoding="utf-8")).get("models", {})
    return next(((name, row) for name, row in models.items()
                 if row.get("path") and Path(row["path"]).resolve() == model_dir.resolve()), None)


def _card(folder: Path, model_dir: Path, license: str | None) -> None:
    """The model card of the exported `folder`, from the run's files beside `model_dir` (run.json,
    the evaluation row), with Hub metadata."""
    import json

    from ..report.model_card import write_model_card

    run_json = model_dir.parent / "run.json"
    run = json.loads(run_json.read_text(encoding="utf-8")) if run_json.is_file() else {}
    write_model_card(folder, evaluation_of(model_dir), name=folder, license=license, run=run)


def hub_folder(model_dir: Path, out: Path, adapter_only: bool, license: str | None) -> dict:
    src = adapter_of(model_dir) if adapter_only else model_dir
    if not adapter_only and not (src / "config.json").is_file():
        raise ExportError(f"{src}: not a model folder (no config.json); an adapter folder needs --adapter-only")
    written: list[str] = []

    def write(d: Path) -> None:
        written.extend(_copy_model_files(src, d))
        if adapter_only and not (d / "tokenizer_config.json").is_file():
            from ..models.loading import load_tokenizer

            load_tokenizer(model_dir).save_pretrained(d)  # an adapter saved before it kept its tokenizer
        _card(d, model_dir, license)

    write_complete(out, write)
    return {"to": "hub-folder", "adapter_only": adapter_only, "source": str(src),
            "files": sorted(p.name for p in out.iterdir() if p.name != MARKER)}


def export_model(model_dir: str | os.PathLike, out: str | os.PathLike, to: str, dtype: str = "f16",
                 adapter_only: bool = False, license: str | None = None, sampling=None) -> dict:
    """Export a model folder (see the module docstring); the report is also `out/export_report.json`."""
    from ..models.finetuning import is_adapter_folder
    from .gguf_export import check_gguf, write_gguf

    model_dir, out = Path(model_dir), Path(out)
    if to not in TARGETS:
        raise ExportError(f"--to {to}: choose one of {', '.join(TARGETS)}")
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model folder")
    if to == "hub-folder":
        report = hub_folder(model_dir, out, adapter_only, license)
    else:
        if adapter_only:
            raise ExportError("--adapter-only exports the adapter as a folder (--to hub-folder); GGUF holds a whole model "
                              "(llm-recipe merge first, or export the merged model/)")
        if is_adapter_folder(model_dir):
            raise ExportError(f"{model_dir}: an adapter folder; merge it first (llm-recipe merge {model_dir} -o DIR)")
        name = f"{model_dir.resolve().parent.name}-{dtype}.gguf" if model_dir.name == "model" else f"{model_dir.name}-{dtype}.gguf"
        report: dict = {"to": to}

        def write(d: Path) -> None:
            report["gguf"] = write_gguf(model_dir, d / name, dtype)
            report["check"] = check_gguf(model_dir, d / name, dtype)
            report["gguf"]["file"] = str(out / name)
            if to == "ollama":
                from ..config import GenerateConfig
                from .ollama import modelfile

                text, report["ollama"] = modelfile(model_dir, name, sampling or GenerateConfig().sampling)
                (d / "Modelfile").write_text(text, encoding="utf-8")
            write_json(d / "export_report.json", report)

        write_complete(out, write)
        return report
    write_json(out / "export_report.json", report)
    return report


@torch.no_grad()
def merge_adapter(adapter_dir: str | os.PathLike, out: str | os.PathLike, base: str | None = None) -> dict:
    """A LoRA adapter merged into its base and saved as a plain model folder, checked: the merged
    model's logits equal the adapter-on-base model's (max difference within 1e-4 of the scale)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ..models.finetuning import load_adapter_merged
    from ..models.loading import load_tokenizer

    adapter_dir, out = Path(adapter_dir), Path(out)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ExportError(f"{adapter_dir}: not a LoRA adapter folder (no adapter_config.json)")
    merged = load_adapter_merged(adapter_dir, base).eval()
    tok = load_tokenizer(adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else
                         (base or merged.config._name_or_path))
    unmerged_base = AutoModelForCausalLM.from_pretrained(str(base or _base_of(adapter_dir)), dtype=torch.float32)
    if len(tok) != unmerged_base.get_input_embeddings().weight.shape[0]:
        unmerged_base.resize_token_embeddings(len(tok))
    unmerged = PeftModel.from_pretrained(unmerged_base, str(adapter_dir)).eval()
    ids = torch.tensor([tok("東京は日本の首都です。 Tokyo is the capital.")["input_ids"]])
    want, got = unmerged(input_ids=ids).logits, merged(input_ids=ids).logits
    diff = float((want - got).abs().max())
    if diff > 1e-4 * max(1.0, float(want.abs().max())):
        raise ExportError(f"{adapter_dir}: the merged model does not reproduce the adapter (max logit difference {diff:.3g})")

    def write(d: Path) -> None:
        merged.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)

    write_complete(out, write)
    return {"adapter": str(adapter_dir), "base": str(base or _base_of(adapter_dir)), "out": str(out),
            "max_logit_difference": diff, "parameters": sum(p.numel() for p in merged.parameters())}


def _base_of(adapter_dir: Path) -> str:
    import json

    return json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
