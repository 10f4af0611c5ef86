"""URL / domain blocklist and allow list, subdomain aware.

`example.com` in the list blocks `example.com`, `www.example.com` and `a.b.example.com`,
but not `notexample.com` (a listed `www.example.com` means the site: `example.com`).
Entries come from `domains=[...]` and/or a file (one domain or URL
per line, `#` comments). Docs without a URL pass (counted as `no_url` in modifications so
the share of unchecked docs is visible). An allow list (`allow`, `allow_file`), when given, keeps
only documents whose URL is under one of its domains (`not_allowlisted`); the deny list wins over
it (`blocklisted_domain`).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from ...config.curate import BlocklistConfig
from ..pipeline import Doc, Step, Tally


def _host(entry: str) -> str:
    entry = entry.strip().lower()
    if "//" in entry:
        entry = urlsplit(entry).hostname or ""
    host = entry.split("/")[0].split(":")[0].strip(".")
    return host[4:] if host.startswith("www.") else host  # `www.x.com` listed means the site x.com


def load_domains(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: blocklist file does not exist")
    lines = p.read_text(encoding="utf-8").splitlines()
    return [h for h in (_host(x.split("#", 1)[0]) for x in lines) if h]


class DomainBlocklist(Step):
    name = "blocklist"
    config_class = BlocklistConfig

    def __init__(self, config: BlocklistConfig | None = None, /, **kw) -> None:
        super().__init__(config, **kw)
        c = self.config
        entries = [_host(d) for d in c.domains] + (load_domains(c.file) if c.file else [])
        self.domains = frozenset(e for e in entries if e)
        allowed = [_host(d) for d in c.allow] + (load_domains(c.allow_file) if c.allow_file else [])
        self.allowed = frozenset(e for e in allowed if e)

    @staticmethod
    def _under(url: str, domains: frozenset[str]) -> bool:
        try:
            host = urlsplit(url if "//" in url else "//" + url).hostname or ""
        except ValueError:  # malformed URL (bad IPv6 literal, ...): cannot match a domain
            return False
        parts = host.split(".")
        return any(".".join(parts[i:]) in domains for i in range(len(parts)))

    def blocked(self, url: str) -> bool:
        return self._under(url, self.domains)

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        kept = []
        for doc in batch:
            url = doc.get("url")
            if not url:
                tally.modified("no_url")
                kept.append(doc)
            elif self.domains and self.blocked(url):
                tally.drop(doc, "blocklisted_domain")
            elif self.allowed and not self._under(url, self.allowed):
                tally.drop(doc, "not_allowlisted")
            else:
                kept.append(doc)
        return kept
