"""Python reward functions, called as TRL's `GRPOTrainer(reward_funcs=...)` calls them.

    load_function("pkg.module:fn")       import a callable (a module path, or `path/to/file.py:fn`)
    call_reward(fn, name, prompts, completions, columns)
                                         fn(prompts=..., completions=..., completion_ids=None,
                                            trainer_state=None, log_extra=..., log_metric=...,
                                            **columns) -> one float or None per completion, checked

The calling convention is TRL's: keyword arguments only, `prompts` and `completions` (strings, or
lists of messages when the data is conversational), every other column of the dataset by its name
(one value per completion), and extras a function may ignore through `**kwargs`. So a reward
function written for TRL runs unchanged. None means "no reward for this completion" (e.g. a math
verifier on a row without a reference): counted, and left out of the mean.

A function that cannot be imported, raises, returns the wrong number of values, or a value that
is not a finite number or None is a `RewardFunctionError`: one line naming the function and the
first bad row.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


class RewardFunctionError(ValueError):
    """A user's reward function is unusable: the one-line reason, naming it and the first bad row."""


def load_function(spec: str) -> Callable:
    """`module.path:function` or `file.py:function` (`:function` may name a dotted attribute)."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise RewardFunctionError(f"reward function {spec!r}: expected 'module.path:function' or 'file.py:function'")
    try:
        if target.endswith(".py") or "/" in target:
            path = Path(target)
            if not path.is_file():
                raise RewardFunctionError(f"reward function {spec!r}: no file {path}")
            name = f"llm_recipe_reward_{abs(hash(str(path.resolve())))}"
            mod_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module  # dataclasses and pickling look modules up by name
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except RewardFunctionError:
        raise
    except Exception as e:  # an import error, a syntax error, an error at the module's top level
        raise RewardFunctionError(f"reward function {spec!r}: cannot import {target} "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise RewardFunctionError(f"reward function {spec!r}: {target} has no attribute {attr!r}")
    if not callable(obj):
        raise RewardFunctionError(f"reward function {spec!r}: {attr} is not callable")
    return obj


def check_rewards(values, n: int, name: str) -> list[float | None]:
    """The function's output as floats (None kept), or the error naming the first bad row."""
    try:
        values = list(values)
    except TypeError:
        raise RewardFunctionError(f"reward function {name}: returned {type(values).__name__}, "
                                  f"not a list of {n} numbers") from None
    if len(values) != n:
        raise RewardFunctionError(f"reward function {name}: returned {len(values)} values for {n} completions")
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise RewardFunctionError(f"reward function {name}: row {i}: {v!r} is not a number or None") from None
        if not math.isfinite(f):
            raise RewardFunctionError(f"reward function {name}: row {i}: reward is {f} (return None for no reward)")
        out.append(f)
    return out


def call_reward(fn: Callable, name: str, prompts: Sequence, completions: Sequence,
                columns: dict[str, Sequence] | None = None, extras: dict | None = None) -> list[float | None]:
    """Call `fn` with TRL's keyword arguments; its checked output. An exception inside it names the
    first row: the batch is retried row by row to find the row it fails on."""
    columns = dict(columns or {})
    kw = {"completion_ids": None, "trainer_state": None, "log_extra": _ignore, "log_metric": _ignore,
          **(extras or {}), **columns}
    try:
        values = _run(fn, prompts=list(prompts), completions=list(completions), **kw)
    except Exception as e:
        row = _failing_row(fn, prompts, completions, kw, columns)
        where = f"row {row}" if row is not None else "the batch"
        raise RewardFunctionError(f"reward function {name}: raised {type(e).__name__} on {where}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''}") from None
    return check_rewards(values, len(completions), name)


def _run(fn: Callable, **kw):
    """Call `fn`; an async function (TRL accepts those too) is run to completion."""
    out = fn(**kw)
    if inspect.isawaitable(out):
        out = asyncio.run(_await(out))
    return out


async def _await(aw):
    return await aw


def _ignore(*args, **kwargs) -> None:
    """TRL 1.x hands reward functions `log_extra` / `log_metric` callbacks; here they log nothing."""


def _failing_row(fn, prompts, completions, kw, columns) -> int | None:
    for i in range(len(completions)):
        row_kw = {**kw, **{k: [v[i]] for k, v in columns.items()}}
        try:
            _run(fn, prompts=[prompts[i]], completions=[completions[i]], **row_kw)
        except Exception:
            return i
    return None
