"""lm-evaluation-harness tasks on a model of the run (optional: `pip install llm-recipe[lm-eval]`).

The harness's own local Hugging Face model class (`HFLM`) reads the model folder the stage wrote,
so the scores are exactly what the harness reports for any HF model; `include_path` adds the
user's own task YAMLs (e.g. a local JSONL as `dataset_path: json`). Without the package the
figures are "not run" with the install line, never an import error.
"""

from __future__ import annotations

import os

from ..config import ComputeConfig, LMHarnessConfig
from ..models.placement import compute_device


def run_lm_harness(model_dir: str | os.PathLike, cfg: LMHarnessConfig, compute: ComputeConfig | None = None) -> dict:
    """{task: {metric: value}} for each configured task, or {"not_run": reason}."""
    if not cfg.tasks:
        return {"not_run": "no lm-eval tasks configured (eval.lm_harness.tasks)"}
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        return {"not_run": "lm-evaluation-harness is not installed (pip install 'llm-recipe[lm-eval]')"}
    compute = compute or ComputeConfig()
    lm = HFLM(pretrained=str(model_dir), batch_size=cfg.batch_size, device=str(compute_device(compute)),
              dtype=compute.dtype, trust_remote_code=False)
    tasks = TaskManager(include_path=str(cfg.include_path) if cfg.include_path else None)
    res = simple_evaluate(model=lm, tasks=list(cfg.tasks), task_manager=tasks, limit=cfg.limit,
                          num_fewshot=cfg.num_fewshot, log_samples=False, random_seed=0, numpy_random_seed=0,
                          torch_random_seed=0, fewshot_random_seed=0)
    return {task: {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "alias"}
            for task, metrics in res["results"].items()}
