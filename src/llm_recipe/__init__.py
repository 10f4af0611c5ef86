"""llm-recipe: raw text to an aligned chat model, one config language for every stage."""

__version__ = "0.1.0"
