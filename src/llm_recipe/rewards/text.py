"""What a reward function reads: the text of a completion (plain, or TRL's conversational form),
and the language it is written in.

    completion_text(c)    "..." as is; [{"role": "assistant", "content": "..."}] (TRL's conversational
                          completions) -> the assistant content
    prompt_text(p)        the last user turn of a conversational prompt, or the text
    text_language(text)   "ja" / "en" / None (no letters): Japanese when kana/kanji make up at least
                          `ja_share` of the letters, else English when Latin letters do
"""

from __future__ import annotations

JA_RANGES = (("\u3040", "\u30ff"), ("\u4e00", "\u9fff"), ("\u3400", "\u4dbf"), ("\uff66", "\uff9f"))


def completion_text(c) -> str:
    if isinstance(c, str):
        return c
    if isinstance(c, dict):
        return str(c.get("content", ""))
    if isinstance(c, list):
        parts = [m.get("content", "") for m in c if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return "".join(p if isinstance(p, str) else "" for p in parts)
    raise TypeError(f"a completion is a string or a list of messages, not {type(c).__name__}")


def prompt_text(p) -> str:
    if isinstance(p, str):
        return p
    users = [m.get("content", "") for m in p if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users else ""


def is_japanese_char(ch: str) -> bool:
    return any(lo <= ch <= hi for lo, hi in JA_RANGES)


def text_language(text: str, ja_share: float = 0.3) -> str | None:
    """The language of an answer: "ja", "en" or None (no letters at all). Japanese answers mix in
    digits and Latin names; English answers rarely hold kana, so a share, not "any", decides."""
    ja = sum(is_japanese_char(ch) for ch in text)
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    if ja + latin == 0:
        return None
    return "ja" if ja / (ja + latin) >= ja_share else "en"
