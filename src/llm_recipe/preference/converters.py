"""Every preference record shape -> canonical pairs, one line at a time.

Shapes recognised per line (no global format flag: mixed files work):
  pairwise     {"prompt", "chosen", "rejected", "margin"?}; prompt a string or messages,
               chosen/rejected strings or [{"role": "assistant", ...}] (TRL conversational)
  implicit     {"chosen", "rejected"} holding whole conversations: hh-rlhf transcripts
               ("\\n\\nHuman: ... \\n\\nAssistant: ...") or message lists; the shared context
               becomes the prompt, the final assistant turns the responses. Plain strings (TRL's
               standard implicit prompt) split at their longest common prefix, as TRL's
               `extract_prompt` does; a string `prompt` beside full conversations is ignored the
               same way (TRL's `maybe_extract_prompt`)
  unpaired     {"prompt", "completion", "label": true/false} (KTO's thumbs up/down): within a prompt,
               each desirable completion is paired with an undesirable one, in file order;
               completions left without a partner are counted (`unpaired_no_partner`)
  completions  UltraFeedback: {"prompt" | "instruction", "completions": [{"response",
               "overall_score"}, ...]} -> pairs with different scores
  ranking      {"prompt", "responses": [...], "ranking": [best, ..., worst]} (indices or letters)
               -> pairs
  pointwise    {"prompt", "responses": [...], "scores": [...]} -> pairs with different scores
               (ties dropped, counted as `tie`)
               Which pairs (`pairs`, a `PairPolicy`): all = all n(n-1)/2 ordered pairs (default);
               best_vs_worst = one per prompt, the best against the worst (TRL's / Tulu's
               binarization of UltraFeedback); best_vs_rest = the best against each other one
  graded       {"prompt", "response_a", "response_b", "grade"}: six levels, A much better ... B
               much better (or 1..6) -> one pair with a margin by strength (Llama-2 style)
Bad lines and bad pairs are counted by reason with file:line (see `records.SkipLog`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import get_args

from ..config.stages import PairPolicy
from .records import (
    InvalidRecord,
    PreferencePair,
    SkipLog,
    check_prompt,
    check_response,
    iter_records,
    make_pair,
    prompt_key,
)

# Six-level comparison of response A against response B -> (winner, strength 1..3).
GRADES: dict[str, tuple[str, int]] = {
    "a_much_better": ("a", 3), "a_better": ("a", 2), "a_slightly_better": ("a", 1),
    "b_slightly_better": ("b", 1), "b_better": ("b", 2), "b_much_better": ("b", 3),
}
GRADE_BY_NUMBER = dict(enumerate(GRADES, start=1))  # 1 = A much better ... 6 = B much better
# Margins by strength as in Llama 2's reward model (the "small" margin set, scaled to 1).
DEFAULT_GRADE_MARGINS = {1: 1 / 3, 2: 2 / 3, 3: 1.0}

_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def parse_hh_transcript(text: str) -> list[dict]:
    """'\\n\\nHuman: hi\\n\\nAssistant: hello' -> [{"role": "user", ...}, {"role": "assistant", ...}]."""
    parts = _HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise InvalidRecord("not_a_transcript", "expected '\\n\\nHuman: ... \\n\\nAssistant: ...'")
    msgs = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        role = "user" if speaker == "Human" else "assistant"
        msgs.append({"role": role, "content": content.removeprefix(" ")})
    return msgs


def _split_conversation(conv: list[dict], name: str) -> tuple[list[dict], str]:
    if not conv or not isinstance(conv[-1], dict) or conv[-1].get("role") != "assistant":
        raise InvalidRecord("bad_message", f"{name} must end with an assistant turn")
    return conv[:-1], check_response(conv[-1].get("content"), name)


def _assistant_text(value, name: str) -> str:
    """A response given as a string or as TRL's [{"role": "assistant", "content": ...}]."""
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], dict) and value[0].get("role") == "assistant":
            return check_response(value[0].get("content"), name)
        raise InvalidRecord("bad_message", f"{name} must be one assistant message")
    return check_response(value, name)


def common_prefix_split(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) of two texts that continue one prompt: the longest common prefix,
    less a trailing space (which goes with the responses), as TRL's `extract_prompt` splits them."""
    idx = 0
    n = min(len(chosen), len(rejected))
    while idx < n and chosen[idx] == rejected[idx]:
        idx += 1
    if idx < n and idx > 0 and chosen[idx - 1] == " ":
        idx -= 1
    return chosen[:idx], chosen[idx:], rejected[idx:]


def _implicit_pair(rec: dict) -> PreferencePair:
    chosen, rejected = rec["chosen"], rec["rejected"]
    if isinstance(chosen, str) and isinstance(rejected, str):
        if not (_HH_TURN.match(chosen) and _HH_TURN.match(rejected)):  # plain texts: TRL's standard implicit prompt
            prompt, c, r = common_prefix_split(chosen, rejected)
            if not prompt.strip():
                raise InvalidRecord("no_shared_prompt", "chosen and rejected share no prefix to use as the prompt")
            return make_pair(prompt, c, r, rec.get("margin"))
        chosen, rejected = parse_hh_transcript(chosen), parse_hh_transcript(rejected)
    if not (isinstance(chosen, list) and isinstance(rejected, list)):
        raise InvalidRecord("bad_type", "chosen/rejected without a prompt must be transcripts or message lists")
    ctx_c, text_c = _split_conversation(chosen, "chosen")
    ctx_r, text_r = _split_conversation(rejected, "rejected")
    if ctx_c != ctx_r:
        raise InvalidRecord("context_mismatch", "chosen and rejected continue different conversations")
    return make_pair(ctx_c, text_c, text_r, rec.get("margin"))


def _responses(rec: dict, key: str) -> tuple[str | list[dict], list[str]]:
    prompt = check_prompt(rec.get("prompt"))
    responses = rec.get("responses")
    if not isinstance(responses, list):
        raise InvalidRecord("missing_field", "responses")
    if len(responses) < 2:
        raise InvalidRecord("too_few_responses", f"{len(responses)} response(s)")
    texts = [check_response(r, f"responses[{i}]") for i, r in enumerate(responses)]
    if not isinstance(rec.get(key), list):
        raise InvalidRecord("missing_field", key)
    return prompt, texts


def _rank_index(item, n: int) -> int:
    if isinstance(item, str) and len(item) == 1 and item.isalpha():
        item = ord(item.upper()) - ord("A")
    if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < n:
        raise InvalidRecord("ranking_invalid", f"{item!r} is not one of the {n} responses")
    return item


def _policy_pairs(n: int, policy: str) -> list[tuple[int, int]]:
    """(better, worse) positions 0..n-1 (best first) of the pairs a policy keeps."""
    if policy == "best_vs_worst":
        return [(0, n - 1)]
    if policy == "best_vs_rest":
        return [(0, j) for j in range(1, n)]
    if policy != "all":
        raise ValueError(f"pairs '{policy}': choose one of {', '.join(get_args(PairPolicy))}")
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def ranking_to_pairs(prompt, responses: Sequence[str], ranking: Sequence, policy: str = "all") -> list[PreferencePair]:
    """Ranking best -> worst (indices or letters) -> pairs, better one first (`policy`; all: the
    n(n-1)/2 pairs in the order (1st, 2nd), (1st, 3rd), ..., (2nd, 3rd), ... of the ranking)."""
    n = len(responses)
    if len(ranking) != n:
        raise InvalidRecord("ranking_length_mismatch", f"{len(ranking)} ranks for {n} responses")
    order = [_rank_index(x, n) for x in ranking]
    if len(set(order)) != n:
        raise InvalidRecord("ranking_invalid", "the ranking repeats a response")
    return [PreferencePair(prompt, responses[order[i]], responses[order[j]],
                           meta={"chosen_rank": i + 1, "rejected_rank": j + 1}) for i, j in _policy_pairs(n, policy)]


def scores_to_pairs(prompt, responses: Sequence[str], scores: Sequence[float],
                    min_gap: float = 0.0, policy: str = "all") -> tuple[list[PreferencePair], int]:
    """The pairs of `policy` (all: every pair) whose scores differ by more than `min_gap`, higher
    one chosen; returns the pairs and the number of tied pairs dropped. The best and the worst are
    the first of equal scores in the order given."""
    if len(scores) != len(responses):
        raise InvalidRecord("scores_length_mismatch", f"{len(scores)} scores for {len(responses)} responses")
    if any(isinstance(s, bool) or not isinstance(s, (int, float)) or s != s for s in scores):
        raise InvalidRecord("bad_type", "scores must be numbers")
    if policy == "all":
        candidates = [(i, j) for i in range(len(responses)) for j in range(i + 1, len(responses))]
    else:  # by score, best first (stable: ties keep their order)
        order = sorted(range(len(scores)), key=lambda k: -scores[k])
        candidates = [(order[a], order[b]) for a, b in _policy_pairs(len(order), policy)]
    pairs, ties = [], 0
    for i, j in candidates:
        if abs(scores[i] - scores[j]) <= min_gap:
            ties += 1
            continue
        hi, lo = (i, j) if scores[i] > scores[j] else (j, i)
        pairs.append(PreferencePair(prompt, responses[hi], responses[lo],
                                    meta={"score_chosen": scores[hi], "score_rejected": scores[lo]}))
    return pairs, ties


def graded_to_pair(prompt, response_a: str, response_b: str, grade,
                   margins: dict[int, float] = DEFAULT_GRADE_MARGINS) -> PreferencePair:
    if isinstance(grade, int) and not isinstance(grade, bool):
        grade = GRADE_BY_NUMBER.get(grade, grade)
    if grade not in GRADES:
        raise InvalidRecord("unknown_grade", f"{grade!r} (use {', '.join(GRADES)} or 1..6)")
    winner, strength = GRADES[grade]
    chosen, rejected = (response_a, response_b) if winner == "a" else (response_b, response_a)
    return make_pair(prompt, chosen, rejected, margins[strength], {"grade": grade})


def record_to_pairs(rec: dict, where: str, log: SkipLog, min_gap: float = 0.0,
                    pairs_from: str = "all") -> list[PreferencePair]:
    """One JSONL record -> its pairs (`pairs_from`: which pairs of a ranking or scores, a
    `PairPolicy`). Problems are counted in `log` (never raised)."""
    try:
        if "ranking" in rec:
            prompt, texts = _responses(rec, "ranking")
            pairs = ranking_to_pairs(prompt, texts, rec["ranking"], pairs_from)
        elif "scores" in rec:
            prompt, texts = _responses(rec, "scores")
            pairs, ties = scores_to_pairs(prompt, texts, rec["scores"], min_gap, pairs_from)
            for _ in range(ties):
                log.skip("tie", where)
        elif "grade" in rec or "response_a" in rec:
            for key in ("response_a", "response_b", "grade"):
                if key not in rec:
                    raise InvalidRecord("missing_field", key)
            pairs = [graded_to_pair(rec.get("prompt"), check_response(rec["response_a"], "response_a"),
                                    check_response(rec["response_b"], "response_b"), rec["grade"])]
        elif "chosen" in rec or "rejected" in rec:
            for key in ("chosen", "rejected"):
                if key not in rec:
                    raise InvalidRecord("missing_field", key)
            if "prompt" in rec and _same_kind(rec["prompt"], rec["chosen"]):
                pairs = [make_pair(rec["prompt"], _assistant_text(rec["chosen"], "chosen"),
                                   _assistant_text(rec["rejected"], "rejected"), rec.get("margin"))]
            else:  # no prompt, or a text prompt beside whole conversations (UltraFeedback binarized)
                pairs = [_implicit_pair(rec)]
        elif "completions" in rec:
            prompt = check_prompt(rec.get("prompt", rec.get("instruction")))
            comps = rec["completions"]
            if not isinstance(comps, list) or not all(isinstance(c, dict) for c in comps):
                raise InvalidRecord("bad_type", "completions must be a list of objects")
            texts = [check_response(c.get("response"), f"completions[{i}].response") for i, c in enumerate(comps)]
            scores = [c.get("overall_score") for c in comps]
            pairs, ties = scores_to_pairs(prompt, texts, scores, min_gap, pairs_from)
            for _ in range(ties):
                log.skip("tie", where)
        else:
            raise InvalidRecord("missing_field", "no chosen/rejected, ranking, scores or grade")
    except InvalidRecord as e:
        log.skip(e.reason, where, e.detail)
        return []
    kept = []
    for p in pairs:  # pairs built from lists are validated one by one
        if p.chosen.strip() == p.rejected.strip():
            log.skip("chosen_equals_rejected", where)
            continue
        p.meta.setdefault("source", where)
        kept.append(p)
    log.kept += len(kept)
    return kept


def _same_kind(prompt, chosen) -> bool:
    """Prompt and responses both text or both messages; otherwise TRL extracts the prompt from the
    responses (a text `prompt` column beside full conversations is a label, not the prompt)."""
    conversational = isinstance(chosen, list) and len(chosen) > 1
    return not conversational or isinstance(prompt, list)


# KTO's label as CSV (and spreadsheets) write it: a word, not a JSON boolean
LABEL_WORDS = {"true": True, "false": False, "1": True, "0": False}


def unpaired_record(rec: dict) -> tuple[object, str, bool]:
    """(prompt, completion, desirable?) of a {"prompt", "completion", "label"} record; the label a
    boolean, or the words True / False (1 / 0) that CSV files hold."""
    prompt = check_prompt(rec.get("prompt"))
    completion = _assistant_text(rec.get("completion"), "completion")
    label = rec.get("label")
    if isinstance(label, str):
        label = LABEL_WORDS.get(label.strip().lower(), label)
    if not isinstance(label, bool):
        raise InvalidRecord("bad_label", f"label {rec.get('label')!r}: must be true (desirable) or false (undesirable)")
    return prompt, completion, label


def pair_unpaired(records: Sequence[tuple[str, dict]], log: SkipLog) -> list[PreferencePair]:
    """Unpaired (KTO) records -> pairs: per prompt, the i-th desirable completion with the i-th
    undesirable one (file order). The rest cannot form a pair and is counted."""
    by_prompt: dict[str, tuple[object, list, list]] = {}
    for where, rec in records:
        try:
            prompt, completion, label = unpaired_record(rec)
        except InvalidRecord as e:
            log.skip(e.reason, where, e.detail)
            continue
        entry = by_prompt.setdefault(prompt_key(prompt), (prompt, [], []))
        entry[1 if label else 2].append((where, completion))
    pairs = []
    for prompt, good, bad in by_prompt.values():
        for (where, c), (_, r) in zip(good, bad, strict=False):
            if c.strip() == r.strip():
                log.skip("chosen_equals_rejected", where)
                continue
            pairs.append(PreferencePair(prompt, c, r, meta={"source": where, "from": "unpaired"}))
        for where, _ in (good[len(bad):] + bad[len(good):]):
            log.skip("unpaired_no_partner", where)
    log.kept += len(pairs)
    return pairs


def is_unpaired(rec: dict) -> bool:
    return "completion" in rec and "label" in rec and "chosen" not in rec


def unpair(pairs: Sequence[PreferencePair]) -> list[tuple]:
    """Pairs -> unpaired (KTO) records (prompt, completion, desirable?, where): the chosen answer
    desirable, the rejected one not, as TRL's `unpair_preference_dataset` does."""
    out = []
    for p in pairs:
        where = str(p.meta.get("source", ""))
        out += [(p.prompt, p.chosen, True, where), (p.prompt, p.rejected, False, where)]
    return out


def read_unpaired_files(files: Iterable[str | os.PathLike], min_gap: float = 0.0) -> tuple[list[tuple], SkipLog]:
    """Unpaired (KTO) records from any source: {"prompt", "completion", "label"} as they are, every
    pair shape unpaired (`unpair`). Returns (prompt, completion, label, where) tuples."""
    log = SkipLog()
    out: list[tuple] = []
    for where, rec in iter_records(files, log, "preference data"):
        if not is_unpaired(rec):
            out += unpair(record_to_pairs(rec, where, log, min_gap))
            continue
        try:
            out.append((*unpaired_record(rec), where))
        except InvalidRecord as e:
            log.skip(e.reason, where, e.detail)
            continue
        log.kept += 1
    return out, log


def read_preference_files(files: Iterable[str | os.PathLike], min_gap: float = 0.0,
                          pairs_from: str = "all") -> tuple[list[PreferencePair], SkipLog]:
    """Read pairs from record sources of any supported shape (JSONL, Parquet, CSV, datasets, ...);
    `pairs_from`: which pairs of a ranking or scores (a `PairPolicy`)."""
    log = SkipLog()
    pairs: list[PreferencePair] = []
    unpaired: list[tuple[str, dict]] = []
    for where, rec in iter_records(files, log, "preference data"):
        if is_unpaired(rec):
            unpaired.append((where, rec))
        else:
            pairs.extend(record_to_pairs(rec, where, log, min_gap, pairs_from))
    return pairs + pair_unpaired(unpaired, log), log
