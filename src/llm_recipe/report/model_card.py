"""A model card (`README.md` in the model folder): what the model is, how it was made, how it did.

    write_model_card(model_dir, evaluation=None)

Everything comes from files next to the model: the stage's `run.json` (stage, recipe section,
library versions, commit, inputs with their sha256, base model, data report) and the model's own
tokenizer config (trained context length). The eval stage writes the card again with the model's
row of the evaluation table. The card is for people and for the hub's model page: its YAML header
is `huggingface_hub.ModelCardData` (base_model, datasets by hub name or file hash, license,
library_name, pipeline_tag, tags, the eval row as model-index results).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..files import atomic_write, read_json
from .eval_table import markdown_table

SECTION_OF_STAGE = {"pretrain": "pretrain", "sft": "sft", "reward_model": "rm", "dpo": "dpo",
                    "online_dpo": "online_dpo", "ppo": "ppo", "grpo": "grpo"}


def _read(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def _usage(model_dir: Path, stage: str, chat: bool) -> list[str]:
    load = f'tok = AutoTokenizer.from_pretrained("{model_dir}")'
    if stage == "reward_model":
        return ["from transformers import AutoModelForSequenceClassification, AutoTokenizer", "", load,
                f'rm = AutoModelForSequenceClassification.from_pretrained("{model_dir}")',
                "# the reward: rm(**tok(rendered_conversation, return_tensors='pt')).logits[0, 0]",
                "# (rendered with the tokenizer's chat template; reward_model.json holds pooling and normalization)"]
    head = ["from transformers import AutoModelForCausalLM, AutoTokenizer", "", load,
            f'model = AutoModelForCausalLM.from_pretrained("{model_dir}")']
    if chat:
        return head + ['ids = tok.apply_chat_template([{"role": "user", "content": "東京はどこ？"}], add_generation_prompt=True,',
                       '                              return_tensors="pt", return_dict=True)',
                       "print(tok.decode(model.generate(**ids, max_new_tokens=64)[0]))"]
    return head + ['ids = tok("東京は", return_tensors="pt")', "print(tok.decode(model.generate(**ids, max_new_tokens=64)[0]))"]


# (metric type, metric name, path in the eval row) of the figures that go into the card's model-index
EVAL_METRICS = [
    ("win_rate", "RM win rate vs reference", "win_rate_rm.win_rate"),
    ("win_rate", "judge win rate vs reference", "win_rate_judge.win_rate"),
    ("reward", "mean reward", "mean_reward"),
    ("kl", "KL to reference (nats)", "kl.kl"),
    ("refusal_rate", "refusal rate (harmful prompts)", "safety.refusal_rate"),
    ("over_refusal_rate", "over-refusal rate (benign prompts)", "safety.over_refusal_rate"),
    ("flip_rate", "sycophancy flip rate", "sycophancy.flip_rate"),
    ("format_following", "format following", "format.format_following"),
    ("perplexity", "perplexity (held-out corpus)", "perplexity.corpus.ppl"),
]


def _figure(row: dict, path: str):
    for key in path.split("."):
        row = row.get(key) if isinstance(row, dict) else None
    return row if isinstance(row, (int, float)) and not isinstance(row, bool) else None


def eval_results(name: str, row: dict) -> list:
    """The eval row's figures as `huggingface_hub.EvalResult`s (the card's model-index)."""
    from huggingface_hub import EvalResult

    return [EvalResult(task_type="text-generation", dataset_type="llm-recipe-eval", dataset_name="llm-recipe eval "
                       "(held-out prompts, bundled JA/EN safety and sycophancy sets)", metric_type=kind,
                       metric_name=label, metric_value=float(v))
            for kind, label, path in EVAL_METRICS if (v := _figure(row, path)) is not None]


def dataset_ids(inputs: dict) -> list[str]:
    """`datasets:` of the card: a hub dataset by its name, a local file by name and sha256 prefix."""
    from ..record_sources import is_hub_name

    return [p if is_hub_name(p) and not Path(p).exists() else f"{Path(p).name}@sha256:{h[:12]}"
            for p, h in inputs.items()]


def card_data(run: dict, stage: str, evaluation: tuple[str, dict] | None = None, license: str | None = None,
              adapter: bool = False):
    """The card's metadata (`huggingface_hub.ModelCardData`): base_model (a hub id; a local base
    is named in the text only), datasets, license (given, else the base's card's), library_name,
    pipeline_tag, tags, eval results."""
    from huggingface_hub import ModelCardData

    base = run.get("base_model")
    hub_base = base if base and not Path(base).exists() and "/" in base else None
    if license is None and base and Path(base).is_dir():
        license = _card_header(Path(base)).get("license")
    results = eval_results(*evaluation) if evaluation is not None else None
    return ModelCardData(
        base_model=hub_base, datasets=dataset_ids(run.get("inputs") or {}) or None, license=license,
        library_name="peft" if adapter else "transformers",
        pipeline_tag="text-classification" if stage == "reward_model" else "text-generation",
        tags=["llm-recipe", stage] + (["lora"] if adapter else []),
        model_name=evaluation[0] if evaluation else None, eval_results=results or None)


def _card_header(model_dir: Path) -> dict:
    """The YAML header of a folder's README.md ({} when there is none)."""
    readme = model_dir / "README.md"
    if not readme.is_file():
        return {}
    from huggingface_hub import ModelCard

    return ModelCard(readme.read_text(encoding="utf-8")).data.to_dict()


def write_model_card(model_dir: str | os.PathLike, evaluation: tuple[str, dict] | None = None,
                     name: str | os.PathLike | None = None, license: str | None = None,
                     run: dict | None = None) -> Path:
    """`name`: the folder's final path when it is written elsewhere first (the usage snippet names it);
    `run`: the stage's run.json (default: the one beside the folder)."""
    model_dir = Path(model_dir)
    run = run if run is not None else _read(model_dir.parent / "run.json")
    stage = run.get("stage", model_dir.parent.name)
    section = (run.get("config") or {}).get(SECTION_OF_STAGE.get(stage, stage))
    tok = _read(model_dir / "tokenizer_config.json")
    data = run.get("data_report") or {}
    base = run.get("base_model")
    adapter = (model_dir / "adapter_config.json").is_file() and not (model_dir / "config.json").is_file()
    header = card_data(run, stage, evaluation, license or _card_header(model_dir).get("license"), adapter)
    lines = ["---", header.to_yaml().strip(), "---", "",
             f"# {model_dir.parent.parent.name}/{model_dir.parent.name}", "",
             f"Made by the `{stage}` stage of llm-recipe: a plain `transformers` model folder (safetensors, "
             "tokenizer with its chat template).", "",
             f"- started from: {f'`{base}`' if base else 'random initialisation (a preset)' if stage == 'pretrain' else 'see the recipe section'}",
             f"- trained context length: {tok.get('model_max_length', 'unknown')} tokens",
             f"- made: {run.get('time', '?')}, llm-recipe commit `{run.get('git_commit') or 'unknown'}`, "
             + ", ".join(f"{k} {v}" for k, v in (run.get("versions") or {}).items() if v and k in
                         ("torch", "transformers", "peft")), ""]
    inputs = run.get("inputs") or {}
    lines += ["## Data", ""]
    lines += [f"- `{p}` (sha256 `{h[:16]}`)" for p, h in inputs.items()] or ["- generated by the recipe (see its run folder)"]
    counts = {k: v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}
    if counts:
        lines.append("- " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))
    if section is not None:
        lines += ["", "## Recipe section", "", "```yaml",
                  yaml.safe_dump({SECTION_OF_STAGE.get(stage, stage): section}, allow_unicode=True, sort_keys=False).strip(),
                  "```"]
    if evaluation is not None:
        name, row = evaluation
        lines += ["", "## Evaluation (llm-recipe eval)", "", markdown_table({"order": [name], "models": {name: row}}).strip()]
    lines += ["", "## Use", "", "```python", *_usage(Path(name or model_dir), stage, bool(tok.get("chat_template")) or
                                                     (model_dir / "chat_template.jinja").is_file()), "```", ""]
    out = model_dir / "README.md"
    with atomic_write(out) as f:
        f.write("\n".join(lines))
    return out
