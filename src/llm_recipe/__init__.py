"""llm-recipe: raw text to an aligned chat model, one config language for every stage.

The public Python API (`llm_recipe.api`, imported on first use so `import llm_recipe` stays cheap):

    llm_recipe.sft(model, data, **section)            supervised fine-tuning
    llm_recipe.dpo(model, data, **section)            DPO and its variants (IPO, SimPO, ORPO, KTO, ...)
    llm_recipe.reward_model(model, data, **section)   a Bradley-Terry reward model
    llm_recipe.grpo(model, prompts, **section)        GRPO against a reward model or rules
    llm_recipe.rloo / llm_recipe.reinforce_pp          RLOO, REINFORCE++ (the same arguments)
    llm_recipe.curate(inputs, **section)              corpus curation
    llm_recipe.evaluate(run_dir)                      every model of a run against its reference
    llm_recipe.Result                                 what each returns: model folder, figures, metrics
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# the API's names, resolved from llm_recipe.api when first used (it sits at the top of the layers,
# above everything this package's modules import: no import here, only a lazy attribute)
_API = ("Result", "curate", "dpo", "evaluate", "grpo", "reinforce_pp", "reward_model", "rloo", "sft")
__all__ = ["__version__", *_API]

# (type checkers read __init__.pyi, which re-exports them from llm_recipe.api)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("llm_recipe.api"), name)
    raise AttributeError(f"module 'llm_recipe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return ["__version__", *_API]
