"""Main-content extraction: an HTML page -> its article text (paragraphs and headings, one per
line), without navigation, footers, comments, ads or cookie banners.

Backends (chosen by `benchmarks/web_extraction.py` on the project's 32 labelled JA/EN pages):
  trafilatura  (default, `favor_precision`) P 0.97 / R 0.97 by character 5-grams; `fallback: false`
               (trafilatura's `fast` mode, no readability / jusText comparison) with `favor:
               balanced`: P 0.95 / R 0.98 for ~40% less CPU
  resiliparse  P 0.67 / R 0.99, ~3x faster: keeps much of the chrome
  (the regular-expression path of `normalize`: P 0.41 / R 0.99)
Ruby readings are removed before extraction (`normalize.strip_ruby`): `<ruby>漢字<rt>かんじ</rt></ruby>`
-> 漢字, counted as modification `ruby`.

The step (`Extract`, name `extract`) acts on records the WARC/HTML readers marked `meta.format:
html` (with `apply_to: html`, also on any text that looks like HTML) and passes other documents
through. Drop reasons: `no_main_content` (nothing left), `extract_timeout` (over `timeout_s`; the
timer is a SIGALRM interval timer, used where the step runs on a process's main thread),
`extract_error` (the parser failed on the page).

`extraction_scores(pred, gold)` is the benchmark's measure: precision and recall of the multiset
of character n-grams (n=5, after NFKC and with all whitespace removed), so it works for Japanese
without a tokenizer and does not depend on line breaks.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import unicodedata
from collections import Counter

from ...config.curate import ExtractConfig
from ..normalize import _LOOKS_HTML, strip_ruby
from ..pipeline import Doc, Step, Tally


class ExtractTimeout(Exception):
    """A page whose extraction ran past `extract.timeout_s` (dropped, counted as extract_timeout)."""


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise ExtractTimeout

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _trafilatura(html: str, c: ExtractConfig) -> str:
    import trafilatura

    return trafilatura.extract(
        html, include_comments=c.include_comments, include_tables=c.include_tables,
        favor_precision=c.favor == "precision", favor_recall=c.favor == "recall",
        include_images=False, include_links=False, deduplicate=False, with_metadata=False, fast=not c.fallback,
    ) or ""


def _resiliparse(html: str, c: ExtractConfig) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), main_content=True, alt_texts=False, links=False,
                              form_fields=False, noscript=False, list_bullets=False,
                              comments=c.include_comments) or ""


BACKENDS = {"trafilatura": _trafilatura, "resiliparse": _resiliparse}


def extract_main(html: str, config: ExtractConfig | None = None) -> tuple[str, int]:
    """(main text, ruby annotations removed) of one page."""
    c = config or ExtractConfig()
    html, n_ruby = strip_ruby(html)
    return BACKENDS[c.backend](html, c).strip(), n_ruby


class Extract(Step):
    name = "extract"
    config_class = ExtractConfig

    def is_page(self, doc: Doc) -> bool:
        meta = doc.get("meta") or {}
        if meta.get("format") == "html":
            return True
        return self.config.apply_to == "html" and bool(_LOOKS_HTML.search(doc["text"][:4096]))

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        kept = []
        for doc in batch:
            if not self.is_page(doc):
                kept.append(doc)
                continue
            try:
                with _time_limit(self.config.timeout_s):
                    text, n_ruby = extract_main(doc["text"], self.config)
            except ExtractTimeout:
                tally.drop(doc, "extract_timeout")
                continue
            except (ValueError, TypeError, RecursionError) as e:  # lxml / parser failures on one page
                tally.drop(doc, "extract_error", f"{type(e).__name__}: {e}"[:200])
                continue
            if not text:
                tally.drop(doc, "no_main_content")
                continue
            doc["text"] = text
            doc["meta"] = {**(doc.get("meta") or {}), "format": "text", "extractor": self.config.backend}
            tally.modified("extracted")
            tally.modified("ruby", n_ruby)
            kept.append(doc)
        return kept


_WS = re.compile(r"\s+")


def _grams(text: str, n: int) -> Counter:
    t = _WS.sub("", unicodedata.normalize("NFKC", text))
    return Counter(t[i:i + n] for i in range(len(t) - n + 1)) if len(t) >= n else Counter([t] if t else [])


def extraction_scores(pred: str, gold: str, n: int = 5) -> tuple[float, float]:
    """(precision, recall) of `pred` against the labelled main text `gold` by character n-gram
    multisets (see the module docstring); an empty prediction has precision 1 by convention."""
    p, g = _grams(pred, n), _grams(gold, n)
    common = sum((p & g).values())
    return (common / sum(p.values()) if p else 1.0), (common / sum(g.values()) if g else 1.0)
