"""Japanese-aware text normalization as one `Mapper` step (one pass per concern, in order).

1. HTML -> text (only for docs that look like HTML): ruby readings dropped
   (`<ruby>漢字<rt>かんじ</rt></ruby>` -> `漢字`), script/style removed, block tags become line
   breaks, entities unescaped.
2. Mojibake repair with ftfy (UTF-8 read as cp1252 / latin-1: `æ—¥æœ¬èªž` -> `日本語`), plus
   a strict re-decode of short runs ftfy deems plausible (`è¿‘ç•¿` -> `近畿`). ftfy is slow,
   so it only runs on texts holding a character mojibake is made of (U+0080-U+00FF or
   cp1252's punctuation); clean Japanese / English never pays for it.
   (UTF-8 read as cp932, `譁・蟄怜喧`, is the `cp932_mojibake` step's, which runs before this one.)
3. Unicode NFKC: full/half width unified (`ＡＢＣ１２３` -> `ABC123`, `ｶﾀｶﾅ` -> `カタカナ`),
   vertical-writing presentation forms to horizontal (`︒︑﹁﹂︵︶` -> `。、「」()`),
   platform-dependent characters to standard forms (`①` -> `1`, `㈱` -> `(株)`, `㌔` -> `キロ`).
4. Replacement-character and tofu runs removed (`�`, `□□□`, `〓〓`); a single `□` stays
   (it is a legitimate symbol in Japanese quizzes and forms).
5. Whitespace: control / zero-width characters removed, CRLF -> LF, trailing spaces cut,
   runs of inner spaces collapsed (indentation kept: code stays valid), >2 blank lines -> 1.

Modification kinds counted in stats: html, ruby, mojibake, nfkc, vertical_forms,
platform_chars, replacement_chars, whitespace. A doc left empty is dropped
(`empty_after_normalize`).
"""

from __future__ import annotations

import html
import re
import unicodedata

import ftfy
import ftfy.bad_codecs  # noqa: F401  (registers the sloppy-windows-1252 codec)

from ..config.curate import NormalizeConfig
from .pipeline import Doc, Step, Tally

_LOOKS_HTML = re.compile(r"<(?:html|body|p|div|br|ruby|span|a|h[1-6]|li|table|td)\b[^>]*>", re.I)
_RT = re.compile(r"<(rt|rp)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_RUBY = re.compile(r"<ruby\b", re.I)
_DROP_BLOCKS = re.compile(r"<(script|style|noscript|head)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_BLOCK_TAG = re.compile(r"</?(?:p|div|br|li|ul|ol|tr|table|h[1-6]|section|article|header|footer|"
                        r"blockquote|pre|title)\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]+>")

# Characters mojibake is made of: latin-1 upper half and cp1252's extra punctuation.
_MOJIBAKE_HINT = re.compile("[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
                            "\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030"
                            "\u2039\u203a\u20ac\u2122]")
_FTFY_CONFIG = ftfy.TextFixerConfig(unescape_html=False, uncurl_quotes=False, normalization=None,
                                    fix_line_breaks=False, explain=False)
# What ftfy leaves: short UTF-8-as-cp1252 runs its badness heuristic accepts as plausible
# Latin text (`è¿‘ç•¿` = 近畿; `¿` is common in Spanish). A run of such characters is re-decoded
# only if its cp1252 bytes form valid UTF-8 of at least one multi-byte character, which
# ordinary Latin-1 text practically never does.
_MOJIBAKE_RUN = re.compile("[\u00c2-\u00f4][\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d"
                           "\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022"
                           "\u2026\u2030\u2039\u203a\u20ac\u2122]+")


def _redecode(m: re.Match) -> str:
    s = m.group()
    try:
        return s.encode("sloppy-windows-1252").decode("utf-8")
    except UnicodeError:
        return s


_VERTICAL = re.compile("[\ufe10-\ufe19\ufe30-\ufe4f]")
# Enclosed / squared / parenthesized forms and other compatibility symbols NFKC rewrites.
_PLATFORM = re.compile("[\u2150-\u218f\u2460-\u24ff\u2776-\u2793\u3200-\u33ff\U0001f100-\U0001f1ff]")
_REPLACEMENT_RUN = re.compile("\ufffd+|\u25a1{2,}|\u3013{2,}")
# C0/C1 controls except \t \n, zero-width chars, BOM, soft hyphen.
_INVISIBLE = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F,
                            *range(0x80, 0xA0), 0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF])
_TRAILING_WS = re.compile(r"[ \t]+$", re.M)
_INNER_WS = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")
_BLANK_LINES = re.compile(r"\n{3,}")


def strip_ruby(html_text: str) -> tuple[str, int]:
    """Ruby readings removed (`<ruby>漢字<rt>かんじ</rt></ruby>` -> `<ruby>漢字</ruby>`), and how many
    ruby annotations there were (the regex path here and the `extract` step share this)."""
    n_ruby = len(_RUBY.findall(html_text))
    return (_RT.sub("", html_text) if n_ruby else html_text), n_ruby


def html_to_text(text: str) -> tuple[str, int]:
    """Strip markup; returns (text, number of ruby annotations removed)."""
    text, n_ruby = strip_ruby(text)
    text = _DROP_BLOCKS.sub("", _COMMENT.sub("", text))
    text = _BLOCK_TAG.sub("\n", text)
    text = html.unescape(_TAG.sub("", text))
    return text, n_ruby


def _clean_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_INVISIBLE)
    text = _TRAILING_WS.sub("", text)
    text = _INNER_WS.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


class Normalize(Step):
    """NFKC + mojibake + HTML/ruby + replacement runs + whitespace (see module docstring)."""

    name = "normalize"
    config_class = NormalizeConfig

    def normalize(self, text: str, tally: Tally | None = None) -> str:
        c = self.config
        count = tally.modified if tally is not None else (lambda kind, n=1: None)
        if c.html == "always" or (c.html == "auto" and _LOOKS_HTML.search(text)):
            text, n_ruby = html_to_text(text)
            count("html")
            count("ruby", n_ruby)
        if c.mojibake and _MOJIBAKE_HINT.search(text):
            fixed = _MOJIBAKE_RUN.sub(_redecode, ftfy.fix_text(text, _FTFY_CONFIG))
            if fixed != text:
                count("mojibake")
                text = fixed
        if c.nfkc and not text.isascii():
            nfkc = unicodedata.normalize("NFKC", text)
            if nfkc != text:
                # classify only changed texts: the extra scans cost nothing on clean ones
                count("vertical_forms", len(_VERTICAL.findall(text)))
                count("platform_chars", len(_PLATFORM.findall(text)))
                count("nfkc")
                text = nfkc
        if c.replacement_runs and ("\ufffd" in text or "\u25a1\u25a1" in text or "\u3013\u3013" in text):
            text, n = _REPLACEMENT_RUN.subn("", text)
            count("replacement_chars", n)
        if c.whitespace:
            cleaned = _clean_whitespace(text)
            if cleaned != text:
                count("whitespace")
                text = cleaned
        return text

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        kept = []
        for doc in batch:
            doc["text"] = self.normalize(doc["text"], tally)
            if doc["text"]:
                kept.append(doc)
            else:  # e.g. an HTML page that was all script, or only replacement characters
                tally.drop(doc, "empty_after_normalize")
        return kept
