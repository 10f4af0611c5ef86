"""`python -m llm_recipe` is the same as the `llm-recipe` command."""

from .cli import app

app()
