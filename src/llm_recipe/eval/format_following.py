"""Format following: does a chat model answer in its format, stop by itself, in the right language?

The SFT stage's headline figure (held-out prompts, greedy, before and after fine-tuning). It
checks the form of an answer, not its content: "Curry rice is a popular dish." to "What is the
capital of Italy?" follows the format. (Formerly "template following".) Content is checked
where the data says what a right answer states: on prompts with an `answer_key` (the bundled
set's fact questions), `states_fact` is the share of answers that state it ("Rome").

    follows_format(prompt, generation)     stopped by eos / end of turn, non-empty, prompt's language
    format_following(model, tok, ...)      the share over prompts (+ states_fact), every sample kept
    held_out_prompts(conversations, n)     single-turn prompts without their answers (+ language,
                                           answer key)
    dedupe_prompts(conversations)          one conversation per distinct prompt
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import SamplingConfig
from ..infer.generate import generate_chat
from ..preference.records import user_text
from ..preference.text_metrics import has_japanese
from ..train.sft_data import Conversation
from .style import states_fact


def follows_format(prompt: str | list[dict], gen, expect_lang: str | None = None) -> bool:
    """The answer ended on its own (eos / end of turn, not the length limit), is non-empty, and is
    in the expected language (default: the prompt's)."""
    lang = expect_lang or ("ja" if has_japanese(user_text(prompt)) else "en")
    return (gen.finish_reason == "stop_token" and bool(gen.text.strip())
            and ("ja" if has_japanese(gen.text) else "en") == lang)


def format_following(model, tokenizer, prompts: Sequence[str | list[dict]], sampling: SamplingConfig,
                     seed: int = 0, chat_format: str | None = None,
                     expect_langs: Sequence[str | None] | None = None,
                     answer_keys: Sequence[str | None] | None = None) -> dict:
    """Share of prompts answered in the format: stopped by itself, in the right language; with
    `answer_keys`, the share of keyed prompts whose answer states the key (None: no keyed prompt)."""
    gens = generate_chat(model, tokenizer, list(prompts), sampling, seed, chat_format=chat_format)
    langs = list(expect_langs) if expect_langs is not None else [None] * len(prompts)
    keys = list(answer_keys) if answer_keys is not None else [None] * len(prompts)
    ok = [follows_format(p, g, lang) for p, g, lang in zip(prompts, gens, langs, strict=True)]
    facts = [states_fact(g.text, k) if k else None for g, k in zip(gens, keys, strict=True)]
    keyed = [f for f in facts if f is not None]
    n = max(len(ok), 1)
    return {"rate": sum(ok) / n, "n": len(ok),
            "ended_by_itself": sum(g.finish_reason == "stop_token" for g in gens) / n,
            "fact_prompts": len(keyed), "states_fact": sum(keyed) / len(keyed) if keyed else None,
            "samples": [{"prompt": user_text(p), "answer": g.text, "finish": g.finish_reason, "ok": o,
                         "states_fact": f} for p, g, o, f in zip(prompts, gens, ok, facts, strict=True)]}


def held_out_prompts(held: Sequence[Conversation], n: int = 40,
                     exclude: Sequence[str] = ("translation",),
                     ) -> tuple[list[list[dict]], list[str], list[str | None]]:
    """Up to `n` single-turn held-out conversations without their answer, the language the answer
    should be in (the prompt's), and the fact a right answer states (`answer_key`, or None).
    Translation is left out by default: its answer is in the other language by design, which
    measures a skill, not following the format; so are tool-use conversations."""
    prompts, langs, keys = [], [], []
    for c in held:
        if sum(m["role"] == "user" for m in c.messages) != 1 or c.category in exclude or c.uses_tools:
            continue  # (a tool conversation without its assistant turns would show a result never asked for)
        prompts.append([m for m in c.messages if m["role"] != "assistant"])
        langs.append("ja" if has_japanese(user_text(c.messages)) else "en")
        keys.append(c.answer_key)
        if len(prompts) >= n:
            break
    return prompts, langs, keys


def dedupe_prompts(held: Sequence[Conversation]) -> list[Conversation]:
    seen, out = set(), []
    for c in held:
        key = repr([m for m in c.messages if m["role"] != "assistant"])
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out
