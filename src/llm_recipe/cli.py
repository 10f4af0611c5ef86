"""`llm-recipe` command line. Every command is a thin call of the library API.

Heavy imports (torch, transformers) happen inside the commands so `--help` stays instant.
Errors a user can fix (bad config, missing file, bad data) are printed as one line, exit 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from .config import ConfigError, RecipeConfig, load_config, parse_overrides

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])

ConfigOpt = Annotated[
    str | None, typer.Option("--config", "-c", help="recipe YAML, or a bundled recipe name (tiny)")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="override a field: --set pretrain.lr=1e-3 (repeatable)")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="global seed (overrides the config)")]
OutOpt = Annotated[Path | None, typer.Option("--output-dir", "-o", help="where the run writes")]


class UserError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


def friendly_errors(fn):
    """Turn user-fixable errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ConfigError, UserError, FileNotFoundError) as e:
            typer.secho(f"error: {e}", fg="red", err=True)
            sys.exit(2)

    return wrapper


def resolve(config: str | None, overrides: list[str] | None, seed: int | None, output_dir: Path | None) -> RecipeConfig:
    ov = parse_overrides(overrides)
    if seed is not None:
        ov["seed"] = seed
    if output_dir is not None:
        ov["output_dir"] = str(output_dir)
    return load_config(config, ov)


@app.command()
@friendly_errors
def pretrain(config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None) -> None:
    """Train the tokenizer (unless the model brings one) and pretrain the model."""
    from .recipe import stage_corpus, stage_pretrain, stage_tokenizer

    cfg = resolve(config, set_, seed, output_dir)
    out = Path(cfg.output_dir)
    files = stage_corpus(cfg, out)
    tok = stage_tokenizer(cfg, files, out)
    typer.echo(f"model: {stage_pretrain(cfg, files, tok, out)}")


@app.command()
@friendly_errors
def generate(
    model: Annotated[Path, typer.Option("--model", "-m", help="model directory (or hub id)")],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="prompt text (repeatable)")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
) -> None:
    """Sample continuations of prompts from a model."""
    from .infer.generate import generate_texts
    from .models.loading import load_causal_lm, load_tokenizer

    cfg = resolve(config, set_, seed, None)
    m, tok = load_causal_lm(str(model)), load_tokenizer(str(model))
    for p, o in zip(prompt, generate_texts(m, tok, prompt, cfg.generate, seed=cfg.seed), strict=True):
        typer.echo(f"{p}{o}")


@app.command()
@friendly_errors
def run(config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None) -> None:
    """Run every stage of a recipe end to end."""
    from .recipe import run_recipe

    artifacts = run_recipe(resolve(config, set_, seed, output_dir))
    for name, path in artifacts.items():
        typer.echo(f"{name:>20}: {path}")


@app.command()
@friendly_errors
def demo(set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None) -> None:
    """Run the bundled tiny recipe (CPU, offline) and print where everything was written."""
    run(config="tiny", set_=set_, seed=seed, output_dir=output_dir or Path("runs/demo"))

