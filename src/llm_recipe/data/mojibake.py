"""UTF-8 read as cp932 (Shift_JIS): detected by a round trip, repaired when lossless, else dropped.

`文字化け` saved as UTF-8 and opened as cp932 comes out as `譁・蟄怜喧縺・`: rare kanji and
half-width katakana that language ID still calls Japanese. ftfy (in `normalize`) repairs UTF-8
read as cp1252 / latin-1, not this. The test is the reverse trip: encode the text as cp932 and
decode the bytes as UTF-8. Real Japanese text gives invalid UTF-8 almost everywhere (its
cp932 bytes seldom form UTF-8 sequences); mojibake gives back readable characters, except where
the first decoding lost a byte (cp932 had no character for it: `・` or `�` in the damaged text).

    score = recovered / (recovered + lost)   over the non-ASCII characters the trip yields

A document with at least `min_chars` recovered characters and `score >= min_score` is mojibake.
Measured on 2000 documents of the bundled sample corpus (seed 11) and their cp932 mojibake:
no clean document flagged; 98% of the damaged ones with 3+ non-ASCII characters flagged (the
rest: English text with one Japanese word). Only 2-4% of damaged Japanese documents survive
the first decoding without a lost byte, so most cannot be repaired: a lost byte is one of ~30
candidate characters, and guessing would put wrong text into the corpus.

Actions (`cp932_mojibake.action`): `repair` (default) puts back documents whose trip is lossless
(modified `repaired`) and drops the rest (`mojibake_unrepairable`); `drop` drops every detected
document (`mojibake`); `flag` keeps them (modified `flagged`). The score goes to
`meta.mojibake_score` of each detected document. Runs first, before `normalize`: NFKC rewrites
half-width katakana, which would break the round trip.
"""

from __future__ import annotations

from ..config.curate import MojibakeConfig
from .pipeline import Doc, Step, Tally


def cp932_score(text: str) -> tuple[float, int]:
    """(score, characters recovered) of the cp932 -> UTF-8 round trip of `text`."""
    back = text.encode("cp932", errors="replace").decode("utf-8", errors="replace")
    lost = back.count("\ufffd")
    recovered = sum(1 for ch in back if ord(ch) > 127) - lost
    return (recovered / (recovered + lost) if recovered else 0.0), recovered


def repair_cp932(text: str) -> str | None:
    """The original text, or None when the first decoding lost bytes (or `text` is not cp932)."""
    try:
        return text.encode("cp932").decode("utf-8")
    except UnicodeError:
        return None


class Cp932Mojibake(Step):
    name = "cp932_mojibake"
    config_class = MojibakeConfig

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        c = self.config
        kept = []
        for doc in batch:
            if doc["text"].isascii():  # nothing a cp932 decoding could have damaged
                kept.append(doc)
                continue
            score, recovered = cp932_score(doc["text"])
            if recovered < c.min_chars or score < c.min_score:
                kept.append(doc)
                continue
            score = round(score, 4)
            doc["meta"] = {**(doc.get("meta") or {}), "mojibake_score": score}
            fixed = repair_cp932(doc["text"]) if c.action == "repair" else None
            if c.action == "flag":
                tally.modified("flagged")
                kept.append(doc)
            elif fixed is not None:
                doc["text"] = fixed
                tally.modified("repaired")
                kept.append(doc)
            else:
                tally.drop(doc, "mojibake" if c.action == "drop" else "mojibake_unrepairable",
                           {"mojibake_score": score})
        return kept
