"""Every model of a run on the same prompts, and each compared with its reference.

    answer_all(model, tok, prompts, ...)        greedy answers to the held-out prompts and to the
                                                safety and sycophancy sets (one batched pass), then
                                                the sycophancy pushback turns after the model's own
                                                neutral answers (a second pass)
    best_of_n_answers(policy, tok, scorer, ...) the same prompts answered by Best-of-N
    own_metrics(answers, prompts)               what needs no reference: format compliance, the
                                                safety rates, sycophancy, answer length
    rm_comparison / judge_comparison            win rate by reward model and by judge (both with
                                                intervals and length control)

A metric that cannot be computed is `{"not_run": reason}` in place of its figures, never an
exception: a run without a reward model still gets every other figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..config import SamplingConfig
from ..infer.best_of_n import best_of_n
from ..infer.generate import generate_chat
from ..infer.sampling import Generation
from ..preference.records import user_text
from .format_following import follows_format
from .length_bias import mean_length
from .refusal import refusal_labels, safety_rates
from .sets import EvalSet
from .sycophancy import followup_messages, sycophancy_rates
from .winrate import outcomes_from_scores, outcomes_from_verdicts, position_bias, win_rate_report


def not_run(reason: str) -> dict:
    return {"not_run": reason}


@dataclass
class EvalPrompts:
    held_out: list  # chat prompts (text or messages) no model of the run trained on
    langs: list  # the language each held-out answer should be in (None: the prompt's)
    safety: EvalSet
    sycophancy: EvalSet

    def all(self) -> list:
        """Every prompt a model answers, in one list (held-out, safety, sycophancy neutral, belief)."""
        syc = self.sycophancy.items
        return [*self.held_out, *(it.prompt for it in self.safety.items), *(it.question for it in syc),
                *(it.belief_prompt for it in syc)]


@dataclass
class Answers:
    """What one model (or Best-of-N) answered: everything the metrics read, kept in the report."""
    held_out: list[str]
    finish: list[str]  # why each held-out answer ended: stop_token | stop_string | length
    safety: list[str]
    sycophancy_neutral: list[str]
    sycophancy_belief: list[str]
    sycophancy_pushback: list[str | None] | None = None  # after "are you sure?" (None: items without one)

    @classmethod
    def split(cls, texts: Sequence[str], finish: Sequence[str], prompts: EvalPrompts) -> Answers:
        a, b = len(prompts.held_out), len(prompts.held_out) + len(prompts.safety.items)
        n_syc = len(prompts.sycophancy.items)
        return cls(list(texts[:a]), list(finish[:a]), list(texts[a:b]), list(texts[b : b + n_syc]),
                   list(texts[b + n_syc :]))

    def followups(self, prompts: EvalPrompts) -> tuple[list[int], list[list[dict]]]:
        """(item indices, conversations) of the pushback turns after this model's neutral answers."""
        convs = [followup_messages(it, a) for it, a in zip(prompts.sycophancy.items, self.sycophancy_neutral,
                                                          strict=True)]
        idx = [i for i, c in enumerate(convs) if c is not None]
        return idx, [convs[i] for i in idx]

    def set_pushback(self, idx: Sequence[int], texts: Sequence[str]) -> None:
        out: list[str | None] = [None] * len(self.sycophancy_neutral)
        for i, t in zip(idx, texts, strict=True):
            out[i] = t
        self.sycophancy_pushback = out


def answer_all(model, tokenizer, prompts: EvalPrompts, sampling: SamplingConfig, seed: int = 0,
               chat_format: str | None = None) -> Answers:
    gens = generate_chat(model, tokenizer, prompts.all(), sampling, seed, chat_format=chat_format)
    ans = Answers.split([g.text for g in gens], [g.finish_reason for g in gens], prompts)
    idx, convs = ans.followups(prompts)
    if convs:
        ans.set_pushback(idx, [g.text for g in generate_chat(model, tokenizer, convs, sampling, seed,
                                                              chat_format=chat_format)])
    return ans


def best_of_n_answers(policy, tokenizer, prompts: EvalPrompts, scorer, n: int, sampling: SamplingConfig,
                      seed: int = 0, chat_format: str | None = None) -> Answers:
    rep = best_of_n(policy, tokenizer, prompts.all(), scorer, n, sampling, seed=seed, chat_format=chat_format)
    ans = Answers.split([it.best_text for it in rep.items],
                        [it.samples[it.best_index].finish_reason for it in rep.items], prompts)
    idx, convs = ans.followups(prompts)
    if convs:
        rep = best_of_n(policy, tokenizer, convs, scorer, n, sampling, seed=seed, chat_format=chat_format)
        ans.set_pushback(idx, [it.best_text for it in rep.items])
    return ans


def own_metrics(ans: Answers, prompts: EvalPrompts, refusal_method: str = "classifier") -> dict:
    """Figures of one model alone: format compliance, safety, sycophancy, length."""
    ok = [follows_format(p, Generation(t, [], f), lang)
          for p, t, f, lang in zip(prompts.held_out, ans.held_out, ans.finish, prompts.langs, strict=True)]
    n = len(ok)
    safety = safety_rates(prompts.safety.items, ans.safety, refusal_method)
    syc = sycophancy_rates(prompts.sycophancy.items, ans.sycophancy_neutral, ans.sycophancy_belief,
                           ans.sycophancy_pushback)
    return {
        "format": {"format_following": sum(ok) / n, "stops_by_itself": ans.finish.count("stop_token") / n,
                   "prompts": n} if n else not_run("no held-out prompts"),
        "safety": {k: v for k, v in safety.items() if k not in ("refused", "labels")},
        "sycophancy": {k: v for k, v in syc.items() if k != "per_item"},
        "mean_chars": mean_length(ans.held_out) if n else None,
    }


def rm_comparison(scores: Sequence[float], ref_scores: Sequence[float], ans: Answers, ref: Answers,
                  n_boot: int, seed: int) -> dict:
    """Win rate of the model's held-out answers against the reference's by reward (normalized scores)."""
    out = win_rate_report(outcomes_from_scores(scores, ref_scores), [len(t) for t in ans.held_out],
                          [len(t) for t in ref.held_out], n_boot, seed)
    return {**out, "mean_reward": float(sum(scores) / len(scores)),
            "reference_mean_reward": float(sum(ref_scores) / len(ref_scores))}


def judge_comparison(judge, prompts: Sequence, ans: Answers, ref: Answers, n_boot: int, seed: int) -> dict:
    """Win rate by an LLM judge asked in both orders; ties (the orders disagree) count half."""
    verdicts = judge.compare(list(zip(prompts, ans.held_out, ref.held_out, strict=True)))
    out = win_rate_report(outcomes_from_verdicts(verdicts), [len(t) for t in ans.held_out],
                          [len(t) for t in ref.held_out], n_boot, seed)
    return {**out, **position_bias(verdicts)}


def answer_records(name: str, prompts: EvalPrompts, ans: Answers, refusal_method: str = "classifier") -> list[dict]:
    """One JSONL record per (model, prompt): what the report shows side by side (safety answers with
    their category and the refusal detector's label)."""
    recs = [{"model": name, "set": "held_out", "prompt": user_text(p), "answer": a, "finish": f}
            for p, a, f in zip(prompts.held_out, ans.held_out, ans.finish, strict=True)]
    labels = refusal_labels(ans.safety, refusal_method)
    recs += [{"model": name, "set": f"safety/{it.kind}", "id": it.id, "lang": it.lang, "category": it.category,
              "prompt": it.prompt, "answer": a, "label": lab}
             for it, a, lab in zip(prompts.safety.items, ans.safety, labels, strict=True)]
    pushed = ans.sycophancy_pushback or [None] * len(ans.sycophancy_neutral)
    for it, a0, a1, a2 in zip(prompts.sycophancy.items, ans.sycophancy_neutral, ans.sycophancy_belief, pushed,
                              strict=True):
        recs += [{"model": name, "set": "sycophancy/neutral", "id": it.id, "prompt": it.question, "answer": a0},
                 {"model": name, "set": "sycophancy/belief", "id": it.id, "prompt": it.belief_prompt, "answer": a1}]
        if a2 is not None:
            recs.append({"model": name, "set": "sycophancy/pushback", "id": it.id, "prompt": it.pushback, "answer": a2})
    return recs
