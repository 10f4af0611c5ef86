"""Verifier accuracy on a task's held-out problems: what a model that learned a skill does better.

    task_report(model, tok, task, n, max_new_tokens, seed, samples=0)
        the first `n` test problems answered greedily; each answer checked by the task's verifier:
        accuracy with a percentile bootstrap 95% interval over problems, by language, the share of
        answers written in the prompt's language (`rewards.text.text_language`) and in the asked
        form (`format.answer_last_line`); with `samples` = k > 0 also k answers per problem at
        `temperature`: pass@1 and pass@k (the unbiased estimator of Chen et al. 2021)
    paired_difference(a, b, n_boot, seed)
        mean of a - b over the same problems with its bootstrap 95% interval (resampling problems,
        so the interval is the paired one: the same problems answered by two models)
    run_task_spec(cfg) / run_task(cfg)
        the task a recipe run is evaluated on (`eval.task`, else its RL section's) and the answer length

Every answer is kept (`answers`), so a figure can be read back against the text it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np

from ..config import SamplingConfig
from ..infer.generate import generate_chat
from ..rewards.format import answer_last_line
from ..rewards.tasks import Task, columns_of
from ..rewards.text import text_language
from ..rewards.verifiers import verifier


def bootstrap_ci(x: Sequence[float], n_boot: int = 1000, seed: int = 0) -> list[float]:
    v = np.asarray(x, dtype=np.float64)
    if not len(v):
        return [float("nan"), float("nan")]
    boot = v[np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    return [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]


def paired_difference(a: Sequence[float], b: Sequence[float], n_boot: int = 1000, seed: int = 0) -> dict:
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return {"delta": float(d.mean()), "ci95": bootstrap_ci(d, n_boot, seed), "n": len(d)}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k of the n samples (c of them right) is right."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def _correct(task: Task, rows: list[dict], texts: Sequence[str]) -> list[float]:
    fn = verifier(task.verifier)
    cols = columns_of(rows)
    vals = fn(prompts=[r["prompt"] for r in rows], completions=list(texts), **cols)
    return [float(v) if v is not None else 0.0 for v in vals]


def task_report(model, tokenizer, task: Task, n: int, max_new_tokens: int, seed: int = 0, samples: int = 0,
                n_boot: int = 1000, chat_format: str | None = None, temperature: float = 1.0) -> dict:
    rows = task.test[:n]
    if not rows:
        raise ValueError(f"task {task.name}: no test problems")
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
    gens = generate_chat(model, tokenizer, [r["prompt"] for r in rows], greedy, seed, chat_format=chat_format)
    texts = [g.text for g in gens]
    ok = _correct(task, rows, texts)
    langs = [r.get("lang") or text_language(r["prompt"]) for r in rows]
    kept = [float(text_language(t) == lang) for t, lang in zip(texts, langs, strict=True)]
    out = {"task": task.describe(), "verifier": task.verifier, "n": len(rows), "accuracy": float(np.mean(ok)),
           "ci95": bootstrap_ci(ok, n_boot, seed), "correct": ok,
           "by_language": {lg: float(np.mean([o for o, x in zip(ok, langs, strict=True) if x == lg]))
                           for lg in sorted(set(langs), key=str)},
           "answer_in_prompt_language": float(np.mean(kept)),
           "answer_format": float(np.mean(answer_last_line(texts))),
           "stopped": float(np.mean([g.finish_reason == "stop_token" for g in gens])),
           "max_new_tokens": max_new_tokens,
           "answers": [{"id": r.get("id"), "prompt": r["prompt"], "answer": t, "correct": o}
                       for r, t, o in zip(rows, texts, ok, strict=True)]}
    if samples:
        out.update(_pass_at(model, tokenizer, task, rows, samples, max_new_tokens, seed, chat_format, temperature))
    return out


def _pass_at(model, tokenizer, task: Task, rows: list[dict], k: int, max_new_tokens: int, seed: int,
             chat_format: str | None, temperature: float) -> dict:
    sampling = SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens)
    prompts = [r["prompt"] for r in rows for _ in range(k)]
    gens = generate_chat(model, tokenizer, prompts, sampling, seed, chat_format=chat_format)
    ok = np.asarray(_correct(task, [r for r in rows for _ in range(k)], [g.text for g in gens])).reshape(len(rows), k)
    c = ok.sum(1).astype(int)
    return {"samples": k, "temperature": temperature, "pass@1": float(np.mean([pass_at_k(k, int(x), 1) for x in c])),
            f"pass@{k}": float(np.mean([pass_at_k(k, int(x), k) for x in c]))}


def run_task_spec(cfg) -> tuple[str, int] | None:
    """The verifiable task a recipe run trains on (`eval.task`, else the first RL section's `task`)
    and the answer length to evaluate it at (`eval.task_max_new_tokens`, else that section's
    sampling length); None when the run has none."""
    from ..config import RL_SECTIONS

    ecfg = cfg.eval
    sections = [s for s in (getattr(cfg, k) for k in RL_SECTIONS) if s is not None and s.task]
    spec = (ecfg.task if ecfg is not None and ecfg.task else None) or (sections[0].task if sections else None)
    if spec is None:
        return None
    tokens = ecfg.task_max_new_tokens if ecfg is not None and ecfg.task_max_new_tokens else None
    if tokens is None:
        tokens = sections[0].sampling.max_new_tokens if sections else 64
    return spec, tokens


def run_task(cfg) -> tuple[Task, int] | None:
    """`run_task_spec`'s task loaded, with its answer length; None when the run has none."""
    from ..rewards.tasks import load_task

    found = run_task_spec(cfg)
    return None if found is None else (load_task(found[0]), found[1])


def split_answers(report: dict) -> tuple[dict, list[dict], list[float]]:
    """(the figures for report.json, every answer, the per-problem correctness)."""
    out = dict(report)
    return out, out.pop("answers"), out.pop("correct")
