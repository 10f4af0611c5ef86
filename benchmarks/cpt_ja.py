"""Continued pretraining of SmolLM2-135M in Japanese: with vs without the tokenizer extension.

    /work/bin/heavy --exclusive python benchmarks/cpt_ja.py --out runs/cpt_ja
    python scripts/readme_figures.py --cpt-ja runs/cpt_ja/results.json --write README.md

Both arms run `recipes/smollm2_cpt_ja.yaml` (import -> curate -> tokenizer -> token shards ->
continued pretraining) on the same curated Japanese corpus and the same number of training
*characters*: the extended arm `--steps` steps, the base-tokenizer arm as many steps as its
tokens per character ask for (it spends more tokens on the same text). Reported on held-out
documents (the curation's validation split, by document id; never trained on):
  * characters per token of SmolLM2's tokenizer and of the extended one (Japanese),
  * Japanese bits per character (comparable across tokenizers) of SmolLM2, and of each arm,
  * English bits per character of SmolLM2 and of each arm (forgetting).

Corpus: the Japanese manual pages of Debian's `manpages-ja` (JM Project translations; each page
under its original free license, see the package's copyright file; fetched with `apt-get download`,
no install) when it can be had, one document per page, roff markup stripped; else the bundled sample
corpus's Japanese half (generated, templated: a weak test of a tokenizer, said so in the output).
English held-out text: the English manual pages of the machine (`/usr/share/man/man1`), the same
genre; else the sample corpus's English documents.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
_KEEP = {"SH", "SS", "B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "TP", "IP", "HP", "PP", "LP", "P"}


def roff_text(src: str) -> str:
    """A manual page's roff source as plain text (macros dropped, their text arguments kept)."""
    out = []
    for line in src.splitlines():
        if line.startswith(('.\\"', "'\\\"")):
            continue
        if line.startswith("."):
            macro, _, rest = line[1:].partition(" ")
            if macro not in _KEEP:
                continue
            line = rest.replace('"', "")
        line = re.sub(r"\\f(\(..|\[[^]]*\]|.)", "", line)
        line = re.sub(r"\\\((..)|\\\[[^]]*\]", "", line)
        line = line.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\").replace("\\,", "").replace("\\/", "")
        line = re.sub(r"\\.", "", line).strip()
        if line:
            out.append(line)
    return "\n".join(out)


def manpages_ja(cache: Path) -> list[dict] | None:
    root = cache / "manpages-ja"
    if not (root / "usr").exists():
        cache.mkdir(parents=True, exist_ok=True)
        got = subprocess.run(["apt-get", "download", "manpages-ja"], cwd=cache, capture_output=True, text=True)
        debs = sorted(cache.glob("manpages-ja_*.deb"))
        if got.returncode or not debs:
            print(f"manpages-ja not available ({got.stderr.strip()[-200:]}): using the sample corpus")
            return None
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    docs = []
    for page in sorted((root / "usr/share/man/ja").glob("man*/*.gz")):
        text = roff_text(gzip.decompress(page.read_bytes()).decode("utf-8", "replace"))
        if len(text) >= 200:
            docs.append({"id": f"ja:{page.parent.name}/{page.name}", "text": text[:6000], "source": "manpages_ja"})
    return docs


def manpages_en(limit: int) -> list[str]:
    texts = []
    for page in sorted(Path("/usr/share/man/man1").glob("*.1.gz")):
        try:
            text = roff_text(gzip.decompress(page.read_bytes()).decode("utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) >= 600 and text.isascii():
            texts.append(text)
        if len(texts) == limit:
            break
    return texts


def sample_docs() -> tuple[list[dict], list[str]]:
    from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files

    files = sample_corpus_files(generate_sample_corpus(docs_per_source=1000, seed=0))
    docs = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    is_ja = [sum("\u3040" <= c <= "\u30ff" for c in d["text"]) > 10 for d in docs]
    return [d for d, j in zip(docs, is_ja, strict=True) if j], [d["text"] for d, j in zip(docs, is_ja, strict=True) if not j]


def _run(args: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        rc = subprocess.run([sys.executable, "-m", "llm_recipe", *args], cwd=ROOT, env=ENV, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    if rc:
        raise SystemExit(f"{' '.join(args)} failed (exit {rc}); see {log}")
    return time.perf_counter() - t0


def _tokens_per_char(tok, texts: list[str]) -> float:
    enc = tok.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    return sum(len(e.ids) for e in enc) / sum(len(t) for t in texts)


def prepare(a, corpus: Path) -> dict:
    """Import, curate and extend once (the recipe's own stages, in this process) to size the arms."""
    from llm_recipe.config import load_config
    from llm_recipe.files import release_folder
    from llm_recipe.models.loading import load_tokenizer
    from llm_recipe.recipe import run_stages
    from llm_recipe.splits import split_by_key
    from llm_recipe.stages.context import RunContext

    ctx = RunContext(load_config("smollm2_cpt_ja", {"output_dir": str(a.out / "ext"), "curate.input.paths": [str(corpus)]}))
    arts = run_stages(ctx, "tokenizer")
    release_folder(ctx.out)  # the arms run as child processes in this folder
    cfg, files = ctx.cfg, [Path(f) for f in arts["corpus_files"]]
    ext, base = load_tokenizer(arts["tokenizer"]), load_tokenizer(cfg.model.name_or_path)
    docs = [json.loads(line) for f in files for line in Path(f).read_text(encoding="utf-8").splitlines()]
    train, held = split_by_key(docs, lambda d: str(d["id"]), cfg.curate.tokenize.val_fraction, cfg.seed)
    train_texts = [d["text"] for d in train]
    return {"cfg": cfg, "base_tok": base, "ext_tok": ext, "model": cfg.model.name_or_path,
            "train_docs": len(train), "held": [d["text"][: a.eval_chars] for d in held][: a.eval_docs],
            "tpc_base": _tokens_per_char(base, train_texts), "tpc_ext": _tokens_per_char(ext, train_texts),
            "extension": json.loads((a.out / "ext" / "tokenizer" / "extension.json").read_text())}


def evaluate(model_dir: str, tok, ja: list[str], en: list[str]) -> dict:
    import torch

    from llm_recipe.eval.perplexity import bits_per_character
    from llm_recipe.models.loading import load_causal_lm

    torch.set_num_threads(2)
    model = load_causal_lm(model_dir, "float32")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return {"ja": bits_per_character(model, tok, ja), "en": bits_per_character(model, tok, en)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "cpt_ja")
    p.add_argument("--steps", type=int, default=60, help="steps of the extended arm (4 x 256 tokens each)")
    p.add_argument("--eval-docs", type=int, default=40)
    p.add_argument("--eval-chars", type=int, default=600, help="characters scored per held-out document")
    p.add_argument("--sample-corpus", action="store_true", help="use the bundled sample corpus, not manpages-ja")
    p.add_argument("--tokenizer-only", action="store_true",
                   help="only import, curate and extend: characters per token before/after, no training")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ja_docs = None if a.sample_corpus else manpages_ja(a.out / "cache")
    en = manpages_en(a.eval_docs)
    source = "manpages-ja (Debian, JM Project)" if ja_docs else "sample corpus (generated, templated)"
    if ja_docs is None or len(en) < a.eval_docs:
        sample_ja, sample_en = sample_docs()
        ja_docs = ja_docs or sample_ja
        en = en if len(en) >= a.eval_docs else sample_en[: a.eval_docs]
    corpus = a.out / "ja.jsonl"
    corpus.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in ja_docs), encoding="utf-8")
    en = [t[: a.eval_chars] for t in en]
    prep = prepare(a, corpus)
    per_step = prep["cfg"].pretrain.batch_size * prep["cfg"].pretrain.block_size
    train_chars = a.steps * per_step / prep["tpc_ext"]
    steps = {"ext": a.steps, "base": math.ceil(train_chars * prep["tpc_base"] / per_step)}
    print(f"corpus: {source}, {len(ja_docs)} documents ({prep['train_docs']} after curation, train split); "
          f"tokens per char: base {prep['tpc_base']:.3f}, extended {prep['tpc_ext']:.3f}; "
          f"{train_chars:,.0f} training characters = {steps['ext']} / {steps['base']} steps", flush=True)
    if a.tokenizer_only:
        results = tokenizer_results(a, prep, source, len(ja_docs), t0)
        (a.out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
        print(figures_text(results))
        return
    common = ["run", "-c", "smollm2_cpt_ja", "--set", f"curate.input.paths=[{corpus}]"]
    seconds = {"ext": _run([*common, "-o", str(a.out / "ext"), "--set", f"pretrain.max_steps={steps['ext']}"],
                           a.out / "ext.log")}
    seconds["base"] = _run([*common, "-o", str(a.out / "base"), "--set", "tokenizer.extend=null",
                            "--set", f"pretrain.max_steps={steps['base']}"], a.out / "base.log")
    held = prep["held"]
    models = {"smollm2": (prep["model"], prep["base_tok"]), "cpt_base_tokenizer": (str(a.out / "base/pretrain/model"),
              prep["base_tok"]), "cpt_extended": (str(a.out / "ext/pretrain/model"), prep["ext_tok"])}
    scores = {name: evaluate(path, tok, held, en) for name, (path, tok) in models.items()}
    results = {
        "corpus": source, "documents": len(ja_docs), "train_documents": prep["train_docs"],
        "held_out_documents": len(held), "eval_chars_per_document": a.eval_chars, "en_documents": len(en),
        "extension": prep["extension"], "train_chars": round(train_chars), "steps": steps,
        "tokens_per_step": per_step, "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "chars_per_token_ja": {"smollm2": scores["smollm2"]["ja"]["chars_per_token"],
                               "extended": scores["cpt_extended"]["ja"]["chars_per_token"]},
        "bits_per_char": {k: {"ja": v["ja"]["bits_per_char"], "en": v["en"]["bits_per_char"]} for k, v in scores.items()},
        "scores": scores, "total_seconds": round(time.perf_counter() - t0, 1), "load_after": os.getloadavg(),
    }
    (a.out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(figures_text(results))


def tokenizer_results(a, prep: dict, source: str, documents: int, t0: float) -> dict:
    held = prep["held"]
    cpt = {name: len("".join(held)) / sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in held)
           for name, tok in (("smollm2", prep["base_tok"]), ("extended", prep["ext_tok"]))}
    return {"corpus": source, "documents": documents, "train_documents": prep["train_docs"],
            "held_out_documents": len(held), "eval_chars_per_document": a.eval_chars, "extension": prep["extension"],
            "chars_per_token_ja": cpt, "tokenizer_only": True, "total_seconds": round(time.perf_counter() - t0, 1),
            "load_after": os.getloadavg()}


def figures_text(r: dict) -> str:
    c = r["chars_per_token_ja"]
    if r.get("tokenizer_only"):
        part = "whole" if r["eval_chars_per_document"] >= 100_000 else f"first {r['eval_chars_per_document']} characters"
        return (f"`--tokenizer-only`: tokenizer extension of SmolLM2-135M on {r['corpus']} ({r['train_documents']} "
                f"curated documents; {r['held_out_documents']} held out, {part}): "
                f"+{r['extension']['added']:,} tokens ({r['extension']['used_on_corpus']:,} of them occur in the "
                f"encoded corpus); Japanese characters per token {c['smollm2']:.2f} -> {c['extended']:.2f} "
                f"(held out). Continued pretraining of both arms: not run yet (`python benchmarks/cpt_ja.py`).\n")
    b = r["bits_per_char"]
    return (f"Continued pretraining of SmolLM2-135M on {r['corpus']} ({r['train_documents']} documents; "
            f"{r['held_out_documents']} held out), {r['train_chars']:,} training characters per arm "
            f"({r['steps']['ext']} steps with the extension, {r['steps']['base']} without):\n"
            f"- time: the extended arm's recipe run {r['seconds']['ext'] / 60:.0f} min, the base-tokenizer arm's "
            f"{r['seconds']['base'] / 60:.0f} min (goal for the recipe: 20 min; load average at the end "
            f"{max(r['load_after']):.1f} on 2 cores); {r['total_seconds'] / 60:.0f} min in all\n"
            f"- tokenizer: +{r['extension']['added']:,} tokens; Japanese characters per token "
            f"{c['smollm2']:.2f} -> {c['extended']:.2f} (held out)\n"
            f"- Japanese bits per character: SmolLM2 {b['smollm2']['ja']:.3f}; after CPT without the extension "
            f"{b['cpt_base_tokenizer']['ja']:.3f}, with it {b['cpt_extended']['ja']:.3f}\n"
            f"- English bits per character (forgetting): SmolLM2 {b['smollm2']['en']:.3f}; after CPT "
            f"{b['cpt_base_tokenizer']['en']:.3f} without the extension, {b['cpt_extended']['en']:.3f} with it\n")


if __name__ == "__main__":
    main()
