"""The commands that inspect a config and ship a model, kept apart from `cli.py`'s stage commands:

    llm-recipe config show -c RECIPE [--set ...]     the resolved config (YAML), as a run would use it
    llm-recipe config schema [SECTION]              every field: type, default, description
    llm-recipe export MODEL_DIR --to gguf|ollama|hub-folder [--dtype f16|bf16|q8_0|f32] [--adapter-only]
    llm-recipe merge ADAPTER_DIR -o OUT [--base BASE]   a LoRA adapter merged into its base
    llm-recipe push MODEL_DIR REPO_ID [--dry-run] [--public]   to the Hugging Face Hub

`register(app, cli)` adds them to the main Typer app; cli.py calls it once and passes itself, so these
commands share its one-line errors (`friendly_errors`, `UserError`), `resolve` and `echo` without
importing it (it sits above this module). Heavy imports happen inside the commands, so `--help`
stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

config_app = typer.Typer(no_args_is_help=True, help="Inspect a recipe's config: the resolved values, the schema.")


_CLI: dict = {}  # "cli": the llm_recipe.cli module, set by `register`


def _cli():
    return _CLI["cli"]


@config_app.command("show")
def config_show(
        config: Annotated[str | None, typer.Option("--config", "-c", help="recipe YAML, or a bundled recipe name (tiny)")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="override a field: --set sft.lr=1e-4 "
                                                       "(TRL's names too: --set sft.learning_rate=1e-4)")] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="global seed (overrides the config)")] = None) -> None:
    """Print the resolved config (YAML) a run with these options would use: defaults filled in,
    overrides applied, other libraries' names (TRL's `learning_rate`, ...) read as ours."""
    from .config import dump_config

    cli = _cli()

    @cli.friendly_errors
    def show() -> None:
        cli.echo(dump_config(cli.resolve(config, set_, seed, None)).rstrip())

    show()


@config_app.command("schema")
def config_schema(section: Annotated[str | None, typer.Argument(
        help="a section or block (sft, dpo, sft.lora, curate.dedup.fuzzy ...); default: every field")] = None) -> None:
    """Every field of the config with its type, default and description; then the other libraries'
    names (TRL, transformers, peft) each section reads, and the field they mean."""
    from .config import RecipeConfig
    from .config.schema import aliases_of, field_rows, format_schema

    cli = _cli()

    @cli.friendly_errors
    def schema() -> None:
        rows = field_rows(RecipeConfig)
        if section:
            rows = [r for r in rows if r.name == section or r.name.startswith(section + ".")]
            if not rows:
                tops = ", ".join(RecipeConfig.model_fields)
                raise cli.UserError(f"config schema: no section or field '{section}' (sections: {tops})")
        cli.echo(format_schema(rows))
        names = {a: f for a, f in aliases_of(RecipeConfig).items() if not section or a.startswith(section + ".")}
        if names:
            cli.echo("\nother libraries' names, read as the field they mean:")
            for alias, field in names.items():
                cli.echo(f"  {alias} -> {field}")

    schema()


def _ship_errors(fn, *args, **kwargs):
    """The shipping components' errors (ExportError, ValueError) as the one-line UserError."""
    from .ship.gguf_export import ExportError

    try:
        return fn(*args, **kwargs)
    except (ExportError, ValueError) as e:
        raise _cli().UserError(str(e).splitlines()[0]) from None


DTYPE_CHOICES = "f16 | bf16 | q8_0 | f32"  # ship.gguf_export.DTYPES (kept here: --help imports no torch)
TARGET_CHOICES = "gguf | ollama | hub-folder"  # ship.folders.TARGETS


def export(model_dir: Annotated[Path, typer.Argument(help="a model folder (a stage's model/, or any HF causal LM folder)")],
           to: Annotated[str, typer.Option("--to", help=f"{TARGET_CHOICES}: one GGUF file (llama.cpp), the GGUF "
                                           "and an Ollama Modelfile, or a Hub-ready folder (weights, tokenizer, card)")],
           output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o", help="where to write (default: "
                                                           "MODEL_DIR/../export-TO)")] = None,
           dtype: Annotated[str, typer.Option("--dtype", help=f"GGUF weights: {DTYPE_CHOICES}")] = "f16",
           adapter_only: Annotated[bool, typer.Option("--adapter-only", help="a LoRA run's adapter with its tokenizer "
                                                      "and card (loadable by peft alone), not the merged model")] = False,
           license: Annotated[str | None, typer.Option("--license", help="the card's license (default: the base "
                                                       "model's card's)")] = None,
           config: Annotated[str | None, typer.Option("--config", "-c", help="recipe whose generate.sampling gives "
                                                      "the Modelfile's PARAMETER defaults")] = None) -> None:
    """Export a model: GGUF (f16 / bf16 / q8_0 / f32, tokenizer and chat template inside, checked by
    loading it back with transformers), Ollama (the GGUF + a Modelfile), or a Hub-ready folder."""
    cli = _cli()

    @cli.friendly_errors
    def run() -> None:
        from .ship.folders import export_model

        out = output_dir or model_dir.parent / f"export-{to}"
        sampling = cli.resolve(config, None, None, None).generate.sampling if config else None
        rep = _ship_errors(export_model, model_dir, out, to, dtype, adapter_only, license, sampling)
        if "check" in rep:
            c = rep["check"]
            cli.echo(f"gguf: {rep['gguf']['file']} ({rep['gguf']['bytes'] / 2**20:.1f} MiB, {dtype}, "
                     f"{rep['gguf']['tokens']} tokens); read back by transformers: max logit difference "
                     f"{c['max_logit_difference']:.2g} (tolerance {c['tolerance']:g} x scale), same tokens, same chat template")
        if "ollama" in rep:
            o = rep["ollama"]
            cli.echo(f"Modelfile: {out / 'Modelfile'} (template: {o['template'] or 'none: ' + o['no_template_because']}; "
                     f"stop {', '.join(o['stop'])})  ->  ollama create NAME -f {out / 'Modelfile'}")
        if rep.get("to") == "hub-folder":
            cli.echo(f"hub folder: {out} ({', '.join(rep['files'])})")

    run()


def merge(adapter_dir: Annotated[Path, typer.Argument(help="a LoRA adapter folder (a run's adapter/, or model/ "
                                                      "saved with lora.save: adapter)")],
          output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="the merged model folder")],
          base: Annotated[str | None, typer.Option("--base", help="the base model (default: the adapter's "
                                                   "base_model_name_or_path)")] = None) -> None:
    """Merge a LoRA adapter into its base: a plain model folder, checked against the adapter on its base."""
    cli = _cli()

    @cli.friendly_errors
    def run() -> None:
        from .ship.folders import merge_adapter

        rep = _ship_errors(merge_adapter, adapter_dir, output_dir, base)
        cli.echo(f"merged {rep['adapter']} into {rep['base']} -> {rep['out']} "
                 f"(max logit difference to the unmerged model {rep['max_logit_difference']:.2g})")

    run()


def push(model_dir: Annotated[Path, typer.Argument(help="a model folder (a stage's model/)")],
         repo_id: Annotated[str, typer.Argument(help="OWNER/NAME on the Hugging Face Hub")],
         dry_run: Annotated[bool, typer.Option("--dry-run", help="list the files and print the card; upload nothing")] = False,
         public: Annotated[bool, typer.Option("--public", help="a public repo (default: private)")] = False,
         adapter_only: Annotated[bool, typer.Option("--adapter-only", help="push a LoRA run's adapter (with its "
                                                    "tokenizer), not the merged model")] = False,
         license: Annotated[str | None, typer.Option("--license", help="the card's license")] = None) -> None:
    """Push a model folder to the Hugging Face Hub (huggingface_hub; HF_TOKEN / `hf auth login`; HF_ENDPOINT):
    weights, tokenizer with its chat template, a card with base_model, datasets, license, eval results."""
    cli = _cli()

    @cli.friendly_errors
    def run() -> None:
        from .ship.hub import push as push_

        rep = _ship_errors(push_, model_dir, repo_id, private=not public, dry_run=dry_run,
                           adapter_only=adapter_only, license=license)
        for name, size in rep["files"].items():
            cli.echo(f"  {name}  {size:,} bytes")
        if dry_run:
            cli.echo(rep["card"])
            cli.echo(f"dry run: {len(rep['files'])} files for {'private' if rep['private'] else 'public'} repo "
                     f"{repo_id}; nothing uploaded")
        else:
            cli.echo(f"pushed to {rep['url']} ({'private' if rep['private'] else 'public'}, commit {rep['commit']})")

    run()


def register(app: typer.Typer, cli) -> None:
    """Add the `config`, `export`, `merge` and `push` commands to `app`; `cli` is the module with
    `friendly_errors`, `UserError`, `resolve` and `echo`."""
    _CLI["cli"] = cli
    app.add_typer(config_app, name="config")
    app.command("export")(export)
    app.command("merge")(merge)
    app.command("push")(push)
