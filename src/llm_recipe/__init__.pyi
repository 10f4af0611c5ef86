# Types of the package root: the public API re-exported from llm_recipe.api (loaded lazily at run time).
from .api import Result as Result
from .api import curate as curate
from .api import dpo as dpo
from .api import evaluate as evaluate
from .api import grpo as grpo
from .api import reward_model as reward_model
from .api import sft as sft

__version__: str
__all__: list[str]
