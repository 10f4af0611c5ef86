"""A two-turn question set in the style of MT-Bench, written for this project, and its evaluation.

    load_mt_bench(path, per_category, languages)   the bundled resources/eval/mt-bench-v1.jsonl (JA
                                                   and EN, 8 categories x 10 two-turn questions per
                                                   language) or a user's file of the same shape;
                                                   every problem names the file and line
    MTBench(questions)                             holds every model's answers and judges them:
        .answer(name, model, tokenizer, sampling, seed, chat_format)
                                                   both turns, greedy; the second turn is asked with
                                                   the model's own first answer in the context
        .judge(backend, pairs, seed, identity, paths, regrade, pairwise)
                                                   single-answer grades 1-10 of every answer (with the
                                                   reference where a question has one right answer),
                                                   each model vs its reference in both orders, the
                                                   judge's consistency and biases -> the report block

Record: {"id", "lang", "category", "turns": [t1, t2], "reference": [r1 | null, r2 | null]?}.
Categories with one right answer (math, reasoning, extraction, coding) must have both references.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import SamplingConfig
from ..files import BadLine
from ..preference.grading import PAIRWISE_MULTI_TURN, GradeItem, grade_answers
from ..preference.text_judge import TextJudge
from ..provenance import file_sha256
from ..record_sources import iter_source
from .judge_bias import judge_bias, length_correlation, self_judged
from .sets import EVAL_SETS, EvalSet
from .winrate import outcomes_from_verdicts, position_bias, win_rate_report

BUNDLED = EVAL_SETS / "mt-bench-v1.jsonl"
CATEGORIES = ("writing", "roleplay", "extraction", "reasoning", "math", "coding", "stem", "humanities")
NEEDS_REFERENCE = ("extraction", "reasoning", "math", "coding")
LANGS = ("en", "ja")
_TURN_LABEL = {"en": ("[Turn {n} answer]", "{n}. "), "ja": ("[{n}回目の回答]", "{n}. ")}


@dataclass(frozen=True)
class MTQuestion:
    id: str
    lang: str
    category: str
    turns: tuple[str, ...]
    reference: tuple[str | None, ...] | None


def _question(rec: dict, where: str) -> MTQuestion:
    qid, lang, cat, turns, ref = (rec.get(k) for k in ("id", "lang", "category", "turns", "reference"))
    if not isinstance(qid, str) or not qid:
        raise ValueError(f"{where}: missing 'id'")
    if lang not in LANGS:
        raise ValueError(f"{where}: 'lang' must be one of {LANGS} (got {lang!r})")
    if cat not in CATEGORIES:
        raise ValueError(f"{where}: 'category' must be one of {', '.join(CATEGORIES)} (got {cat!r})")
    if not isinstance(turns, list) or len(turns) != 2 or not all(isinstance(t, str) and t.strip() for t in turns):
        raise ValueError(f"{where}: 'turns' must be two non-empty strings")
    if ref is not None and (not isinstance(ref, list) or len(ref) != 2
                            or not all(r is None or (isinstance(r, str) and r.strip()) for r in ref)):
        raise ValueError(f"{where}: 'reference' must be two strings (or null for a turn without one right answer)")
    if cat in NEEDS_REFERENCE and (ref is None or None in ref):
        raise ValueError(f"{where}: a '{cat}' question needs a reference answer for both turns")
    return MTQuestion(qid, lang, cat, tuple(turns), tuple(ref) if ref else None)


def load_mt_bench(path: str | os.PathLike | None = None, per_category: int | None = None,
                  languages: Sequence[str] = LANGS) -> EvalSet:
    """The question set (validated whole), then the first `per_category` questions of each
    (category, language) in the chosen languages."""
    p = Path(path) if path else BUNDLED
    if not p.exists():
        raise FileNotFoundError(f"{p}: MT-Bench question set not found")
    items, seen = [], {}
    for where, rec in iter_source(p):
        if isinstance(rec, BadLine):
            raise ValueError(str(rec))
        q = _question(rec, where)
        if q.id in seen:
            raise ValueError(f"{where}: duplicate id {q.id!r} (first at {seen[q.id]})")
        seen[q.id] = where
        items.append(q)
    taken: dict[tuple[str, str], int] = defaultdict(int)
    chosen = []
    for q in items:
        if q.lang in languages and (per_category is None or taken[q.category, q.lang] < per_category):
            taken[q.category, q.lang] += 1
            chosen.append(q)
    if not chosen:
        raise ValueError(f"{p}: no question in languages {list(languages)}")
    return EvalSet(p.stem, str(p), file_sha256(p), chosen)


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


class MTBench:
    def __init__(self, questions: EvalSet):
        self.set = questions
        self.questions: list[MTQuestion] = questions.items
        self.answers: dict[str, list[tuple[str, str]]] = {}
        self.records: list[dict] = []  # every grade and pairwise verdict, for mt_bench_judgements.jsonl

    def answer(self, name: str, model, tokenizer, sampling: SamplingConfig, seed: int,
               chat_format: str | None = None) -> None:
        from ..infer.generate import generate_chat

        qs = self.questions
        first = [g.text for g in generate_chat(model, tokenizer, [q.turns[0] for q in qs], sampling, seed,
                                               chat_format=chat_format)]
        convs = [[{"role": "user", "content": q.turns[0]}, {"role": "assistant", "content": a},
                  {"role": "user", "content": q.turns[1]}] for q, a in zip(qs, first, strict=True)]
        second = [g.text for g in generate_chat(model, tokenizer, convs, sampling, seed, chat_format=chat_format)]
        self.answers[name] = list(zip(first, second, strict=True))

    def answer_records(self) -> list[dict]:
        return [{"model": name, "id": q.id, "lang": q.lang, "category": q.category, "turn": t + 1,
                 "question": q.turns[t], "answer": ans[t]}
                for name, answers in self.answers.items() for q, ans in zip(self.questions, answers, strict=True)
                for t in range(2)]

    # ---- single-answer grading ---------------------------------------------------------------
    def _items(self, name: str) -> list[GradeItem]:
        out = []
        for q, (a1, a2) in zip(self.questions, self.answers[name], strict=True):
            ref = q.reference or (None, None)
            out.append(GradeItem(q.turns[0], a1, q.lang, ref[0]))
            out.append(GradeItem(q.turns[1], a2, q.lang, ref[1], history=((q.turns[0], a1),)))
        return out

    def grade(self, backend, regrade: int) -> tuple[dict, dict, dict]:
        """(per-model grade summary, consistency, pooled grade-length correlation)."""
        names = list(self.answers)
        items = {n: self._items(n) for n in names}
        flat = [(n, i, it) for n in names for i, it in enumerate(items[n])]
        grades = grade_answers(backend, [it for _, _, it in flat])
        scores: dict[str, list[float | None]] = {n: [None] * len(items[n]) for n in names}
        for (n, i, _), g in zip(flat, grades, strict=True):
            scores[n][i] = g.score
            q = self.questions[i // 2]
            self.records.append({"kind": "grade", "model": n, "id": q.id, "lang": q.lang, "category": q.category,
                                 "turn": i % 2 + 1, "score": g.score, "judgement": g.rationale})
        # consistency: the same answers graded again (a fresh request, not the cache), spread over models
        step = max(1, len(flat) // regrade) if regrade else 0
        again = flat[::step][:regrade] if regrade else []
        second = grade_answers(backend, [it for _, _, it in again], repeat=1)
        firsts = [scores[n][i] for n, i, _ in again]
        both = [(a, b.score) for a, b in zip(firsts, second, strict=True) if a is not None and b.score is not None]
        consistency = {"regraded": len(again), "both_readable": len(both),
                       "same_score": (sum(a == b for a, b in both) / len(both)) if both else None,
                       "mean_abs_diff": _mean([abs(a - b) for a, b in both])}
        summary = {n: self._summary(scores[n]) for n in names}
        lengths = [len(it.answer) for _, _, it in flat]
        pooled = length_correlation([scores[n][i] for n, i, _ in flat], lengths)
        return summary, consistency, {"scores": scores, "length": pooled}

    def _summary(self, scores: list[float | None]) -> dict:
        by_cat, by_lang, by_turn = defaultdict(list), defaultdict(list), defaultdict(list)
        for i, s in enumerate(scores):
            q = self.questions[i // 2]
            by_cat[q.category].append(s)
            by_lang[q.lang].append(s)
            by_turn[str(i % 2 + 1)].append(s)
        return {"score": _mean(scores), "by_category": {c: _mean(by_cat[c]) for c in CATEGORIES if c in by_cat},
                "by_lang": {k: _mean(v) for k, v in by_lang.items()}, "by_turn": {k: _mean(v) for k, v in by_turn.items()},
                "graded": sum(s is not None for s in scores), "unparseable": sum(s is None for s in scores)}

    # ---- pairwise: each model vs its reference, both orders ----------------------------------
    def _transcript(self, q: MTQuestion, answers: tuple[str, str]) -> str:
        label = _TURN_LABEL[q.lang][0]
        return "\n\n".join(f"{label.format(n=t + 1)}\n{a}" for t, a in enumerate(answers))

    def pairwise(self, backend, pairs: Sequence[tuple[str, str]], scores: dict, n_boot: int, seed: int) -> dict:
        judges = {lang: TextJudge(backend, PAIRWISE_MULTI_TURN[lang]) for lang in LANGS}
        out = {}
        for name, ref in pairs:
            if name not in self.answers or ref not in self.answers:
                continue
            verdicts = [None] * len(self.questions)
            for lang, judge in judges.items():
                idx = [i for i, q in enumerate(self.questions) if q.lang == lang]
                items = [("\n".join(_TURN_LABEL[lang][1].format(n=t + 1) + x for t, x in enumerate(self.questions[i].turns)),
                          self._transcript(self.questions[i], self.answers[name][i]),
                          self._transcript(self.questions[i], self.answers[ref][i])) for i in idx]
                for i, v in zip(idx, judge.compare(items), strict=True):
                    verdicts[i] = v
            for q, v in zip(self.questions, verdicts, strict=True):
                self.records.append({"kind": "pairwise", "model": name, "reference": ref, "id": q.id,
                                     "winner": v.winner, "verdicts": list(v.labels or ())})
            len_m = [sum(map(len, a)) for a in self.answers[name]]
            len_r = [sum(map(len, a)) for a in self.answers[ref]]
            outcomes = outcomes_from_verdicts(verdicts)
            out[name] = {"reference": ref, **win_rate_report(outcomes, len_m, len_r, n_boot, seed),
                         **position_bias(verdicts), "unparseable": sum(None in (v.labels or ()) for v in verdicts),
                         "length_correlation": length_correlation(list(outcomes), [m - r for m, r in zip(len_m, len_r, strict=True)])["spearman"],
                         "agreement_with_grades": self._agreement(verdicts, scores[name], scores[ref])}
        return out

    @staticmethod
    def _agreement(verdicts, model_scores, ref_scores) -> dict:
        """How often a decisive pairwise verdict agrees with the order of the two answers' grades
        (mean of the two turns), over questions where both exist and the grades differ."""
        agree = n = 0
        for i, v in enumerate(verdicts):
            gm, gr = _mean(model_scores[2 * i: 2 * i + 2]), _mean(ref_scores[2 * i: 2 * i + 2])
            if v.winner == 0 or gm is None or gr is None or gm == gr:
                continue
            n += 1
            agree += (v.winner > 0) == (gm > gr)
        return {"share": agree / n if n else None, "n": n}

    def judge(self, backend, pairs: Sequence[tuple[str, str]], *, identity: dict | None, paths: dict[str, str | None],
              regrade: int, pairwise: bool, n_boot: int, seed: int) -> dict:
        """The report block: grades per model and category, consistency, pairwise, biases, usage."""
        self.records = []
        summary, consistency, graded = self.grade(backend, regrade)
        pw = self.pairwise(backend, pairs, graded["scores"], n_boot, seed) if pairwise else {}
        first = _mean([r["first_position_rate"] for r in pw.values()])  # pooled over the pairs
        selfs = self_judged(identity, {n: paths.get(n) for n in self.answers})
        return {"set": {**self.set.describe(), "languages": sorted({q.lang for q in self.questions}),
                        "categories": [c for c in CATEGORIES if any(q.category == c for q in self.questions)]},
                "judge": backend.name, "judge_info": backend.describe(), "models": summary,
                "consistency": consistency, "pairwise": pw,
                "bias": judge_bias(first, selfs, graded["length"])}
