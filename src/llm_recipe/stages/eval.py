"""Stage 7: every model of the run against its reference, on the same held-out prompts.

    STAGE                             <run>/eval/: report.json (figures per model; a figure that
                                      cannot be had is {"not_run": reason}), answers.jsonl (every
                                      answer the figures were computed from), table.md
    run_models(artifacts)             the run's models in order, each with its reference: base, SFT
                                      (vs base), Best-of-N, DPO, PPO, GRPO (vs SFT, or vs base
                                      without SFT)

Held-out prompts: `eval.prompts` files, else the SFT held-out split (prompts no stage trained on).
Models are loaded one at a time (with their reference for the KL estimate), on the main process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .. import console, distributed
from ..config import EvalConfig
from ..data.token_shards import ShardError
from ..eval.compare import (
    Answers,
    EvalPrompts,
    answer_all,
    answer_records,
    best_of_n_answers,
    judge_comparison,
    not_run,
    own_metrics,
    rm_comparison,
)
from ..eval.diversity import diversity
from ..eval.format_following import dedupe_prompts, held_out_prompts
from ..eval.kl import best_of_n_kl_bound, kl_of_samples, same_vocabulary, sample_responses
from ..eval.length_bias import length_vs_reference, reward_length_correlation
from ..eval.perplexity import answer_perplexity, text_perplexity
from ..eval.refusal import detector_info
from ..eval.sets import load_safety_set, load_sycophancy_set, named_or_path
from ..files import BadLine, atomic_write, read_json, write_json, write_jsonl
from ..infer.reward import RewardScorer
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..preference.judge import CausalLMJudge
from ..provenance import write_run_manifest
from ..record_sources import check_source, is_hub_name, iter_source
from ..report.eval_table import markdown_table
from ..report.model_card import write_model_card
from ..tokenizer.chat_formats import ChatFormat, resolve_chat_format, saved_template
from ..train.pretrain import document_texts, held_out_blocks
from ..train.sft_data import DataStats, tokenize_examples
from ..train.shard_data import heldout_blocks
from .context import Artifacts, RunContext
from .contract import Stage, stage_key

NO_PROMPTS = "no held-out prompts (set eval.prompts, or give the recipe an sft: section)"


@dataclass
class RunModel:
    name: str
    path: str | None  # None for Best-of-N (a procedure over the policy `base`)
    reference: str | None  # name of the model it is compared with
    best_of_n: int | None = None  # N, for the Best-of-N row
    policy: str | None = None  # Best-of-N's policy dir


def run_models(artifacts: dict[str, str], bon_n: int | None = None, compare_to: str = "previous",
               only: list[str] | None = None) -> list[RunModel]:
    """`compare_to` 'base': every model against the base; `only`: the named models and their references."""
    base = artifacts.get("pretrained_model") or artifacts.get("start_model")
    models = [RunModel("base", base, None)] if base else []
    ref = "base" if base else None
    if sft := artifacts.get("sft_model"):
        models.append(RunModel("sft", sft, ref))
        ref = "sft" if compare_to == "previous" or not base else ref
    policy = sft or base
    if "best_of_n_report" in artifacts and bon_n and policy:
        models.append(RunModel(f"best_of_{bon_n}", None, ref, best_of_n=bon_n, policy=policy))
    for algo in ("dpo", "online_dpo", "ppo", "grpo"):
        if path := artifacts.get(f"{algo}_model"):
            models.append(RunModel(algo, path, ref))
    if only is not None:
        keep = set(only) | {m.reference for m in models if m.name in only}
        models = [m for m in models if m.name in keep]
    return models


def _models(ctx: RunContext, ecfg: EvalConfig) -> list[RunModel]:
    return run_models(ctx.artifacts, ctx.cfg.bon.n if ctx.cfg.bon else None, ecfg.compare_to, ecfg.models)


def _held_out(ctx: RunContext, ecfg: EvalConfig):
    """(prompts, expected languages, held-out SFT conversations or None); no prompts without
    `eval.prompts` and SFT."""
    if ecfg.prompts:
        prompts = []
        for f in ecfg.prompts:
            f = named_or_path(f)  # a file, or a bundled prompt set by name (helpful-v1)
            check_source(f, "eval prompts")
            for where, rec in iter_source(f):
                if isinstance(rec, BadLine):
                    raise ValueError(str(rec))
                if not isinstance(rec, dict) or not (isinstance(rec.get("prompt"), str) or rec.get("messages")):
                    raise ValueError(f"{where}: an eval prompt needs 'prompt' (text) or 'messages'")
                prompts.append(rec.get("prompt") or rec["messages"])
        prompts = prompts[: ecfg.n_prompts]
        return prompts, [None] * len(prompts), None
    if ctx.cfg.sft is None:  # the safety and sycophancy sets still run
        return [], [], None
    if ctx.cfg.sft.data == "hh":  # the HH set has no ordinary held-out split: the bundled ordinary requests
        return _held_out(ctx, ecfg.model_copy(update={"prompts": [Path("helpful-v1")]}))
    held = ctx.sft_split().held_out  # the split SFT used
    prompts, langs, _ = held_out_prompts(dedupe_prompts(held), ecfg.n_prompts)
    return prompts, langs, held


def _perplexity_texts(ctx: RunContext, ecfg: EvalConfig):
    """(held-out documents, or the token shards whose validation windows pretraining held out; why
    there are none): `eval.perplexity_data`, else the shards the run pretrained on."""
    if ecfg.perplexity_data:
        return document_texts(ecfg.perplexity_data), None
    report = ctx.out / "pretrain" / "data_report.json"
    token_data = read_json(report).get("token_data") if report.exists() else None
    if ctx.cfg.pretrain is None or not token_data:
        return None, "the run has no pretraining corpus (set eval.perplexity_data)"
    if not Path(token_data).exists():
        return None, "the pretraining token shards are gone"
    return Path(token_data), None


def _unloadable(path: str | None) -> str | None:
    """Why a model folder cannot be evaluated (missing, or a save that never finished), else None."""
    p = Path(path) if path else None
    if p is None:
        return "no model path"
    if not p.exists():  # a hub id (org/name) is loaded from the hub; a missing local folder is not
        return None if is_hub_name(path) else f"model {path} not found"
    if p.is_dir() and not (p / "config.json").is_file():
        return f"{path} is not a complete model folder (no config.json)"
    return None


class _Evaluator:
    """Holds what every model is measured with (prompts, held-out text, RM, judge) and the results."""

    def __init__(self, ctx: RunContext):
        cfg = ctx.cfg
        self.cfg, self.ecfg, self.out = cfg, cfg.eval or EvalConfig(), ctx.out
        self.prompts_raw, langs, self.held_convs = _held_out(ctx, self.ecfg)
        self.prompts = EvalPrompts(self.prompts_raw, langs, load_safety_set(self.ecfg.safety_set),
                                   load_sycophancy_set(self.ecfg.sycophancy_set))
        self.texts, self.no_text = _perplexity_texts(ctx, self.ecfg)
        self.artifacts = ctx.artifacts
        self.sft_format = self._format_of(self.artifacts.get("sft_model"))
        self.answers: dict[str, Answers] = {}
        self.rows: dict[str, dict] = {}
        self._ref: tuple[str, object] | None = None  # (path, model) of the last reference loaded

    def _format_of(self, model_dir) -> ChatFormat | None:
        if not model_dir:
            return None
        tok = load_tokenizer(model_dir)
        return resolve_chat_format(tok) if saved_template(tok) else None

    def chat_format(self, tok) -> ChatFormat | None:
        """The model's own format; a model without one (a pretrained base) is asked in the SFT
        model's format, as the SFT stage's 'before' figures are; None when there is neither."""
        if saved_template(tok):
            return resolve_chat_format(tok)
        return self.sft_format

    def _corpus_perplexity(self, model, tok) -> dict:
        if self.texts is None:
            return not_run(self.no_text)
        block, n = self.cfg.pretrain.block_size if self.cfg.pretrain else 256, self.ecfg.perplexity_blocks
        if isinstance(self.texts, Path):  # the validation windows pretraining held out (token shards)
            try:
                used, available = heldout_blocks(self.texts, tok, block, n)
            except ShardError as e:  # a model with another tokenizer cannot be scored on these ids
                return not_run(str(e))
        else:
            blocks = held_out_blocks(self.texts, tok, block)
            used, available = blocks[:n], len(blocks)  # the first blocks of the split: the same text for every model
        return {**text_perplexity(model, used), "blocks": len(used), "blocks_available": available} \
            if len(used) else not_run("held-out text shorter than one block")

    def perplexity(self, model, tok, fmt: ChatFormat | None) -> dict:
        out = {"corpus": self._corpus_perplexity(model, tok)}
        if self.held_convs is None or fmt is None:
            out["sft_answers"] = not_run("no SFT held-out split" if self.held_convs is None else "no chat template")
        else:
            s, stats = self.cfg.sft, DataStats()
            examples = tokenize_examples(self.held_convs, tok, fmt, stats=stats, max_length=s.max_length,
                                         overlong=s.overlong, train_on=s.train_on)
            pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            out["sft_answers"] = {**answer_perplexity(model, examples, pad), "conversations": len(examples),
                                  "skipped": dict(stats.skipped)}
        return out

    def measure(self, m: RunModel) -> None:
        c, compute = self.ecfg, self.ecfg.compute
        row: dict = {"reference": m.reference, "path": m.path}
        t0 = time.perf_counter()
        if m.best_of_n:
            row.update(self._measure_best_of_n(m))
        elif (why := _unloadable(m.path)) is not None:
            row["generation"] = row["perplexity"] = not_run(why)
        else:
            model, tok = load_model(m.path, compute), load_tokenizer(m.path)
            fmt = self.chat_format(tok)
            with autocast(compute, model.device):
                row["perplexity"] = self.perplexity(model, tok, fmt)
                if fmt is None:
                    row["generation"] = not_run("no chat template (the model has none and the run has no SFT model)")
                else:
                    ans = answer_all(model, tok, self.prompts, c.sampling, self.cfg.seed, chat_format=fmt.name)
                    self.answers[m.name] = ans
                    if not self.prompts_raw:
                        row["diversity"] = row["kl"] = not_run(NO_PROMPTS)
                    else:
                        samples = sample_responses(model, tok, fmt, self.prompts_raw, c.kl_max_new_tokens,
                                                   self.cfg.seed)
                        row["diversity"] = diversity([t for r in samples for t in r.texts])
                        row["kl"] = self._kl(m, tok, samples)
            del model
        row["seconds"] = round(time.perf_counter() - t0, 1)
        self.rows[m.name] = row

    def _kl(self, m: RunModel, tok, samples) -> dict:
        if m.reference is None:
            return not_run("no reference model (this is the run's starting point)")
        ref_path = next(r.path for r in self.models if r.name == m.reference)
        ref_tok = load_tokenizer(ref_path)
        if not same_vocabulary(tok, ref_tok):
            return not_run(f"the model and its reference '{m.reference}' have different vocabularies")
        if self._ref is None or self._ref[0] != ref_path:  # DPO, PPO, GRPO share one reference: load it once
            self._ref = (ref_path, load_model(ref_path, self.ecfg.compute))
        return {**kl_of_samples(samples, self._ref[1]), "reference": m.reference}

    def _measure_best_of_n(self, m: RunModel) -> dict:
        if self.scorer is None:
            return {"generation": not_run(self.no_scorer)}
        compute = self.ecfg.compute
        policy, tok = load_model(m.policy, compute), load_tokenizer(m.policy)
        bon = self.cfg.bon
        with autocast(compute, policy.device):
            self.answers[m.name] = best_of_n_answers(policy, tok, self.prompts, self.scorer, m.best_of_n, bon.sampling,
                                                     self.cfg.seed, chat_format=bon.chat_format)
        return {"perplexity": not_run("Best-of-N is a sampling procedure, not a model with likelihoods"),
                "diversity": diversity(self.answers[m.name].held_out),
                "kl": {"kl": best_of_n_kl_bound(m.best_of_n), "kl_stderr": None, "reference": m.reference,
                       "estimator": f"analytic bound log N - (N-1)/N, N={m.best_of_n}"}}

    def load_scorer(self) -> None:
        rm = self.artifacts.get("reward_model")
        self.scorer, self.no_scorer = None, "the run has no reward model"
        if rm and Path(rm).is_dir():
            self.scorer = RewardScorer.load(rm, dtype=self.ecfg.compute.dtype)
        elif rm:
            self.no_scorer = f"reward model {rm} not found"

    def load_judge(self) -> None:
        spec = self.ecfg.judge_model
        self.judge, self.no_judge, self.judge_name = None, "no judge model (eval.judge_model)", None
        if spec is None:
            return
        path = _judge_path(self.artifacts, spec)
        if not path:
            self.no_judge = f"eval.judge_model is '{spec}' but the run has no {spec} model"
            return
        try:
            model = load_model(path, self.ecfg.compute)
            self.judge = CausalLMJudge(model, load_tokenizer(path), self.ecfg.judge_template, self.ecfg.judge_choices)
            self.judge_name = spec
        except (OSError, ValueError) as e:
            self.no_judge = f"judge {path}: {str(e).splitlines()[0]}"

    def compare(self) -> None:
        """Everything that needs two models' answers or a scorer: win rates, length vs reference,
        and the reward of every answer (for the reward-length correlation)."""
        c = self.ecfg
        scores = {}
        if self.scorer is not None:
            scores = {name: [float(x) for x in self.scorer.score(self.prompts_raw, a.held_out)]
                      for name, a in self.answers.items()}
        for m in self.models:
            row, ans = self.rows[m.name], self.answers.get(m.name)
            if ans is None:
                continue
            row.update(own_metrics(ans, self.prompts, c.refusal_detector))
            if scores.get(m.name):
                row["mean_reward"] = sum(scores[m.name]) / len(scores[m.name])
            ref = self.answers.get(m.reference) if m.reference else None
            if ref is None or not self.prompts_raw:
                why = ("no reference model" if m.reference is None else NO_PROMPTS if not self.prompts_raw
                       else f"reference '{m.reference}' has no answers")
                row["win_rate_rm"] = row["win_rate_judge"] = row["length_vs_reference"] = not_run(why)
                continue
            row["length_vs_reference"] = length_vs_reference(ans.held_out, ref.held_out)
            # answers word for word the reference's (a model trained on its base's own answers keeps many)
            row["identical_to_reference"] = sum(a == b for a, b in zip(ans.held_out, ref.held_out, strict=True)) / len(
                ans.held_out)
            row["win_rate_rm"] = (rm_comparison(scores[m.name], scores[m.reference], ans, ref, c.bootstrap, self.cfg.seed)
                                  if self.scorer is not None else not_run(self.no_scorer))
            if self.judge is None:
                row["win_rate_judge"] = not_run(self.no_judge)
            else:
                with autocast(c.compute, self.judge.model.device):
                    row["win_rate_judge"] = {**judge_comparison(self.judge, self.prompts_raw, ans, ref, c.bootstrap,
                                                                self.cfg.seed), "judge": self.judge_name}
        pooled = [(s, t) for name, ss in scores.items() for s, t in zip(ss, self.answers[name].held_out, strict=True)]
        self.reward_length = (reward_length_correlation([s for s, _ in pooled], [t for _, t in pooled]) if pooled
                              else not_run(self.no_scorer if self.scorer is None else NO_PROMPTS))

    def run(self, models: list[RunModel]) -> dict:
        self.models = models
        self.load_scorer()
        for m in models:
            console.log(f"eval: {m.name} ...")
            self.measure(m)
        self.load_judge()
        self.compare()
        return {"models": self.rows, "order": [m.name for m in models],
                "prompts": {"held_out": len(self.prompts_raw), "source": [str(p) for p in self.ecfg.prompts]
                            if self.ecfg.prompts else "sft held-out split"},
                "sets": {"safety": self.prompts.safety.describe(), "sycophancy": self.prompts.sycophancy.describe()},
                "refusal_detector": detector_info(self.ecfg.refusal_detector),
                "reward_model": self.artifacts.get("reward_model") if self.scorer is not None else not_run(self.no_scorer),
                "judge": self.judge_name if self.judge is not None else not_run(self.no_judge),
                "reward_length_correlation": self.reward_length,
                "sampling": self.ecfg.sampling.model_dump(), "seed": self.cfg.seed}


def _judge_path(artifacts: dict, spec: str | None) -> str | None:
    """'sft': the run's SFT model; 'base': the model the run starts from; else the spec itself."""
    base = artifacts.get("pretrained_model") or artifacts.get("start_model")
    return {"sft": artifacts.get("sft_model"), "base": base}.get(spec, spec) if spec else None


def _eval_config(ctx: RunContext) -> EvalConfig:
    return ctx.cfg.eval or EvalConfig(compute=ctx.cfg.compute)


def key(ctx: RunContext) -> dict:
    ecfg = _eval_config(ctx)
    models = {m.name: m.path or m.policy for m in _models(ctx, ecfg)}
    judge = _judge_path(ctx.artifacts, ecfg.judge_model)
    sets = [named_or_path(p) for p in (ecfg.safety_set, ecfg.sycophancy_set, *(ecfg.prompts or []),
                                       *(ecfg.perplexity_data or [])) if p]
    return stage_key(ctx, {"eval": ecfg.model_dump(mode="json"),
                           "sft": ctx.cfg.sft.model_dump(mode="json") if ctx.cfg.sft else None,
                           "bon": ctx.cfg.bon.model_dump(mode="json") if ctx.cfg.bon else None,
                           "pretrain_val": ctx.cfg.pretrain.val_fraction if ctx.cfg.pretrain else None},
                     inputs=[*sets, *(ctx.artifacts.get("corpus_files") or [])],
                     models={**models, "reward_model": ctx.reward_model(), "judge": judge})


def run(ctx: RunContext) -> Artifacts:
    """Evaluate the run's models into <run>/eval/ (main process)."""
    if ctx.cfg.eval is None:
        ctx.cfg = ctx.cfg.model_copy(update={"eval": _eval_config(ctx)})
    return {"eval_report": str(distributed.on_main(_evaluate, ctx))}


def _evaluate(ctx: RunContext) -> Path:
    cfg, out, run_dir = ctx.cfg, ctx.out, ctx.out / "eval"
    ev = _Evaluator(ctx)
    models = _models(ctx, ev.ecfg)
    if not models:
        raise ValueError("eval: the run has no model to evaluate")
    report = ev.run(models)
    if ev.ecfg.lm_harness:
        from ..eval.lm_harness import run_lm_harness

        report["lm_harness"] = {m.name: run_lm_harness(m.path, ev.ecfg.lm_harness, ev.ecfg.compute) for m in models
                                if m.path}
    for m in models:  # each model's card gets its row of the table
        if m.path and Path(m.path, "config.json").is_file() and Path(m.path).resolve().is_relative_to(out.resolve()):
            write_model_card(m.path, (m.name, report["models"][m.name]))
    write_jsonl(run_dir / "answers.jsonl",
                (r for name, a in ev.answers.items()
                 for r in answer_records(name, ev.prompts, a, ev.ecfg.refusal_detector)))
    write_json(run_dir / "report.json", report)
    with atomic_write(run_dir / "table.md") as f:
        f.write(markdown_table(report))
    write_run_manifest(run_dir, stage="eval", config=cfg,
                       inputs=[ev.prompts.safety.path, ev.prompts.sycophancy.path,
                               *(named_or_path(p) for p in ev.ecfg.prompts or [])])
    for line in markdown_table(report).splitlines():
        console.log(line)
    return run_dir / "report.json"


STAGE = Stage("eval", run, key, lambda cfg: cfg.eval is not None)
