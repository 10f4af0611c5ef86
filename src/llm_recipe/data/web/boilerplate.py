"""Repeated header / footer lines across the pages of one site, removed (a `GlobalStep`).

A line that appears on at least `min_share` of a site's pages (and on at least `min_pages` of
them) is the site's chrome (`この記事を書いた人：編集部...`, `Share on X`, a copyright line)
rather than its content, whatever the extractor left. The site is the URL's host (`www.` kept
apart from the bare domain only if the crawl does). Documents without a URL, and sites with
fewer than `min_pages` pages, pass untouched.

    observe(batch) -> [(host, [line hash, ...])]   one entry per page (unique line hashes, xxh64)
    fit(partials)  -> per host, the hashes of the lines on >= max(min_pages, min_share * pages)
    process        removes those lines (modification `lines_removed`, per line; `pages_changed`);
                   a page with nothing else left is dropped (`site_boilerplate_only`)
The fitted state holds only the boilerplate hashes per host (small), never the pages' lines.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from urllib.parse import urlsplit

import xxhash

from ...config.curate import SiteBoilerplateConfig
from ..pipeline import Doc, GlobalStep, Tally


def site_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return (urlsplit(url if "//" in url else "//" + url).hostname or "").lower() or None
    except ValueError:
        return None


def _line_key(line: str) -> int:
    return xxhash.xxh64_intdigest(" ".join(line.split()).encode())


class SiteBoilerplate(GlobalStep):
    name = "site_boilerplate"
    config_class = SiteBoilerplateConfig

    def __init__(self, config: SiteBoilerplateConfig | None = None, /, **kw) -> None:
        super().__init__(config, **kw)
        self.boilerplate: dict[str, frozenset[int]] = {}
        self.report: dict = {}

    def observe(self, batch: list[Doc]) -> list[tuple[str, list[int]]]:
        out = []
        for doc in batch:
            host = site_of(doc.get("url"))
            if host:
                out.append((host, sorted({_line_key(s) for s in doc["text"].split("\n") if s.strip()})))
        return out

    def fit(self, partials: Iterable[list[tuple[str, list[int]]]]) -> None:
        pages: Counter = Counter()
        lines: dict[str, Counter] = defaultdict(Counter)
        for part in partials:
            for host, keys in part:
                pages[host] += 1
                lines[host].update(keys)
        c = self.config
        self.boilerplate = {}
        for host, n in pages.items():
            if n < c.min_pages:
                continue
            need = max(c.min_pages, math.ceil(c.min_share * n))
            common = frozenset(k for k, m in lines[host].items() if m >= need)
            if common:
                self.boilerplate[host] = common
        self.report = {"sites": len(pages), "sites_judged": sum(1 for n in pages.values() if n >= c.min_pages),
                       "boilerplate_lines": sum(len(v) for v in self.boilerplate.values())}
        self.fitted = True

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        kept = []
        for doc in batch:
            common = self.boilerplate.get(site_of(doc.get("url")) or "")
            if not common:
                kept.append(doc)
                continue
            lines = doc["text"].split("\n")
            rest = [s for s in lines if not s.strip() or _line_key(s) not in common]
            removed = len(lines) - len(rest)
            if removed:
                tally.modified("lines_removed", removed)
                tally.modified("pages_changed")
                doc["text"] = "\n".join(rest).strip()
            if doc["text"]:
                kept.append(doc)
            else:
                tally.drop(doc, "site_boilerplate_only")
        return kept
