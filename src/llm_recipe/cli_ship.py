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


def register(app: typer.Typer, cli) -> None:
    """Add the `config`, `export`, `merge` and `push` commands to `app`; `cli` is the module with
    `friendly_errors`, `UserError`, `resolve` and `echo`."""
    _CLI["cli"] = cli
    app.add_typer(config_app, name="config")
