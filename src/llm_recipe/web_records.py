"""Web pages as records: WARC / WARC.gz files (fastwarc) and HTML files, decoded to text with a
charset rule that handles Japanese pages. `record_sources` dispatches `.warc[.gz]` and
`.html`/`.htm` here, so every reader (curation included) reads them the same way.

Record (one per page): `{"id", "text": the decoded HTML (or plain text), "url", "meta": {"format":
"html" | "text", "content_type", "charset", "charset_from", "warc_date", "warc_record_id",
"offset"}}`. The curation `extract` step turns `format: html` records into their main text.

Which WARC records: `response` records (and `resource` records: a crawler's stored files) whose
payload is HTML (`text/html`, `application/xhtml+xml`) or plain text; `request`, `metadata`,
`warcinfo` and `revisit` records carry no page and are passed over (as datatrove's reader does).

Charset, first that applies: a byte-order mark; the HTTP header's charset; the page's own
`<meta charset>` / `http-equiv` declaration (first 4 KB); ISO-2022-JP escape sequences; pure
ASCII; valid UTF-8; then detection (charset-normalizer over the first 64 KB). A declared charset
the bytes do not decode under is ignored (declarations lie); a Western single-byte declaration
(latin-1, cp1252, ascii: a server's default) is tried only after the meta tag and UTF-8.
Shift_JIS is read as cp932 and EUC-JP as EUC-JIS-2004 (their supersets, which hold the Windows
and JIS X 0213 characters pages use).

Skips (`BadLine`, counted by reason; `line` is the record's byte offset, in the compressed
stream for .gz): `not_html` (another payload type), `no_payload`, `too_large` (over the record
cap, `files.max_record_bytes`, skipped unread), `undecidable_charset`, `truncated_record`
(the file ends inside a record), `corrupt_gzip` (a damaged gzip member: skipped, reading goes
on from the next intact member), `corrupt_warc` (unparseable; the rest of the file is skipped).
"""

from __future__ import annotations

import codecs
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from .files import BadLine, max_record_bytes, open_text_bytes

HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)
# codec names for the declarations Japanese pages use (supersets where the web needs them)
_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "ms_kanji": "cp932",
            "windows-31j": "cp932", "cp932": "cp932", "euc-jp": "euc_jis_2004", "euc_jp": "euc_jis_2004",
            "x-euc-jp": "euc_jis_2004", "iso-2022-jp": "iso2022_jp_ext", "iso8859-1": "cp1252",
            "iso-8859-1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_CANONICAL = re.compile(rb"""<link[^>]+rel=["']?canonical["']?[^>]*href=["']([^"'>\s]+)|"""
                        rb"""<meta[^>]+property=["']og:url["'][^>]*content=["']([^"'>\s]+)""", re.I)
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.I)
_ISO2022 = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b$(D")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DETECT_BYTES = 64 << 10
_WEAK = {"cp1252", "latin_1", "iso8859-1", "ascii"}
_GZIP_MAGIC = b"\x1f\x8b\x08"


def codec_for(name: str | None) -> str | None:
    """A Python codec for a declared charset name, or None when unknown."""
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def header_charset(content_type: str | None) -> str | None:
    m = _CHARSET_PARAM.search(content_type or "")
    return m.group(1) if m else None


def _try(body: bytes, codec: str | None) -> str | None:
    if not codec:
        return None
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _detect(body: bytes) -> tuple[str, str] | None:
    from charset_normalizer import from_bytes

    best = from_bytes(body[:DETECT_BYTES]).best()
    if best is None:
        return None
    codec = codec_for(best.encoding) or best.encoding
    text = _try(body, codec)
    if text is None:  # detected on the head, the tail does not decode: keep what decodes
        text = body.decode(codec, errors="replace")
    return text, codec


def decode_page(body: bytes, declared: str | None = None) -> tuple[str, str, str] | None:
    """(text, codec, how) with how in bom / header / meta / iso2022 / detected; None: undecidable.
    A Western single-byte declaration (latin-1, cp1252, ascii: what servers send by default) is
    weak: it decodes any bytes, so the page's own meta tag and valid UTF-8 are tried before it."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            text = _try(body, codec)
            if text is not None:
                return text, codec, "bom"
    declared_ = [("header", codec_for(declared))]
    m = _META_CHARSET.search(body[:4096])
    if m:
        declared_.append(("meta", codec_for(m.group(1).decode("ascii", "replace"))))
    strong = [(how, c) for how, c in declared_ if c and c not in _WEAK]
    weak = [(how, c) for how, c in declared_ if c in _WEAK]
    iso = [("iso2022", "iso2022_jp_ext")] if any(e in body for e in _ISO2022) else []
    for how, codec in [*strong, *iso]:
        text = _try(body, codec)
        if text is not None:
            return text, codec, how
    if body.isascii():
        return body.decode("ascii"), "ascii", weak[0][0] if weak else "detected"
    text = _try(body, "utf-8")  # valid UTF-8 of non-ASCII text is practically never another charset
    if text is not None:
        return text, "utf-8", "detected"
    for how, codec in weak:
        text = _try(body, codec)
        if text is not None and not _looks_cjk_bytes(body):
            return text, codec, how
    found = _detect(body)
    return (found[0], found[1], "detected") if found else None


def _looks_cjk_bytes(body: bytes) -> bool:
    """Shift_JIS / EUC-JP text read as a Western charset: its bytes decode under a Japanese codec."""
    sample = body[:DETECT_BYTES]
    return any(_try(sample, c) is not None for c in ("cp932", "euc_jis_2004")) and _try(sample, "ascii") is None


def page_record(body: bytes, where: str, offset: int, content_type: str | None, url: str | None,
                rec_id: str, extra: dict | None = None, charset: str | None = None) -> dict | BadLine:
    """One page's record, or the BadLine that says why it is not one."""
    path = where
    kind = (content_type or "text/html").split(";")[0].strip().lower()
    fmt = "html" if kind in HTML_TYPES else "text" if kind in TEXT_TYPES else None
    if fmt is None:
        return BadLine(path, offset, "not_html", kind[:80])
    if not body.strip():
        return BadLine(path, offset, "no_payload", url or "")
    decoded = decode_page(body, charset or header_charset(content_type))
    if decoded is None:
        return BadLine(path, offset, "undecidable_charset", url or "")
    text, codec, how = decoded
    meta = {"format": fmt, "content_type": kind, "charset": codec, "charset_from": how, "offset": offset,
            **(extra or {})}
    return {"id": rec_id, "text": text, "url": url, "meta": meta}


def iter_html_file(path: Path) -> Iterator[tuple[str, dict | BadLine]]:
    """One record per HTML file (`.html`, `.htm`, optionally `.gz`/`.zst`); its URL from the page's
    `<link rel=canonical>` or `og:url` when it has one (what per-site steps key on)."""
    limit = max_record_bytes()
    with open_text_bytes(path) as f:
        body = f.read(limit + 1)
    if len(body) > limit:
        yield f"{path}:0", BadLine(str(path), 0, "too_large", f"over max_record_mb={limit / 2**20:g}")
        return
    stem = path.name.split(".")[0]
    m = _CANONICAL.search(body[:65536])
    url = (m.group(1) or m.group(2)).decode("ascii", "replace") if m else None  # the page's own URL, if it says
    yield f"{path}:0", page_record(body, str(path), 0, "text/html", url, stem)


# ---- WARC ---------------------------------------------------------------------------------
def _member_end(data: bytes, start: int) -> int | None:
    """End offset of the gzip member starting at `start`, None when it is cut short or damaged."""
    d = zlib.decompressobj(wbits=31)
    try:
        d.decompress(memoryview(data)[start:])
    except zlib.error:
        return None
    return len(data) - len(d.unused_data) if d.eof else None


def _intact_warc_member(f, pos: int) -> bool:
    f.seek(pos)
    blob = f.read(max_record_bytes() + (1 << 20))
    head = zlib.decompressobj(wbits=31)
    try:
        return head.decompress(blob[:65536], 16).startswith(b"WARC/") and _member_end(blob, 0) is not None
    except zlib.error:
        return False


def _first_broken_member(f, pos: int) -> int:
    """Offset of the first gzip member from `pos` on that does not decompress whole."""
    while True:
        f.seek(pos)
        blob = f.read(max_record_bytes() + (1 << 20))
        end = _member_end(blob, 0) if blob else None
        if end is None:
            return pos
        pos += end


def _next_member(f, after: int) -> int | None:
    """Offset of the first intact gzip member after `after` that holds a WARC record."""
    chunk = 1 << 20
    base = after
    while True:
        f.seek(base)
        data = f.read(chunk + 2)
        if len(data) < 3:
            return None
        pos = data.find(_GZIP_MAGIC)
        while pos != -1 and pos < chunk:
            if _intact_warc_member(f, base + pos):
                return base + pos
            pos = data.find(_GZIP_MAGIC, pos + 1)
        base += chunk


def _gz_member_end(f, pos: int) -> tuple[int | None, str]:
    """(end offset of the gzip member at `pos`, "") streamed with the output discarded; (None,
    "truncated_record") when the file ends inside it, (None, "corrupt_gzip") when it is damaged."""
    d = zlib.decompressobj(wbits=31)
    f.seek(pos)
    while not d.eof:
        chunk = f.read(1 << 20)
        if not chunk:
            return None, "truncated_record"
        try:
            d.decompress(chunk, 1 << 16)
            while d.unconsumed_tail and not d.eof:
                d.decompress(d.unconsumed_tail, 1 << 16)
        except zlib.error:
            return None, "corrupt_gzip"
    return f.tell() - len(d.unused_data), ""


def _check_tail(path: Path, last: int | None, gz: bool) -> tuple[int, str] | None:
    """Where and why the file stops being whole records after `last` (the last record read; None:
    the start): (offset, "truncated_record") when it ends inside a record, (offset,
    "corrupt_gzip" / "corrupt_warc") when what follows is not a record; None when it is whole.
    Streams: a large last record is skipped over, never held."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos = last or 0
        while pos < size:
            if gz:
                end, why = _gz_member_end(f, pos)
                if end is None:
                    return pos, why
                pos = end
                continue
            f.seek(pos)
            head = f.read(65536)
            rest = head.lstrip(b"\r\n")
            if not rest.strip():
                return None if pos + len(head) >= size else (pos, "corrupt_warc")
            pos += len(head) - len(rest)
            if not rest.startswith(b"WARC/"):
                return pos, "corrupt_warc"
            head_end = rest.find(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", rest[:head_end]) if head_end > 0 else None
            if m is None or pos + head_end + 4 + int(m.group(1)) > size:
                return pos, "truncated_record"
            pos += head_end + 4 + int(m.group(1))
    return None


def _warc_record(rec, path: Path, limit: int) -> dict | BadLine:
    offset = rec.stream_pos
    if rec.content_length > limit:
        return BadLine(str(path), offset, "too_large", f"at byte offset {offset}: over max_record_mb={limit / 2**20:g}")
    body = rec.reader.read()
    h = rec.headers
    ctype, charset = (rec.http_content_type, rec.http_charset) if rec.is_http else (h.get("Content-Type"), None)
    rec_id = (h.get("WARC-Record-ID") or f"{path.name}:{offset}").strip("<>")
    extra = {"warc_date": h.get("WARC-Date"), "warc_record_id": rec_id}
    return page_record(body, str(path), offset, ctype, h.get("WARC-Target-URI"), rec_id, extra, charset)


def iter_warc(path: Path) -> Iterator[tuple[str, dict | BadLine]]:
    """Pages of a WARC / WARC.gz file, streamed (see the module docstring for the skips). Each
    record is yielded once the next one (or the end of the file) shows it was whole."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    gz = path.name.lower().endswith(".gz")
    limit = max_record_bytes()
    types = WarcRecordType.response | WarcRecordType.resource
    last: int | None = None
    pending = None
    with open(path, "rb") as f:
        start = 0
        while True:
            f.seek(start)
            try:
                for rec in ArchiveIterator(f, record_types=types, parse_http=True, fsspec_args=False):
                    if pending is not None:
                        yield pending
                    last = rec.stream_pos  # absolute, also after a restart mid-file
                    pending = f"{path}:{last}", _warc_record(rec, path, limit)
            except OSError as e:
                if pending is not None:
                    yield pending
                    pending = None
                where = last if last is not None else start
                if not gz:  # no member boundaries to resynchronise on
                    yield f"{path}:{where}", BadLine(str(path), where, "corrupt_warc",
                                                     f"after byte offset {where}: {e}"[:200])
                    return
                bad = _first_broken_member(f, where)
                yield f"{path}:{bad}", BadLine(str(path), bad, "corrupt_gzip",
                                               f"gzip member at byte offset {bad}: {e}"[:200])
                nxt = _next_member(f, bad + 1)
                if nxt is None:
                    return
                start, last = nxt, None
                continue
            break
    tail = _check_tail(path, last if last is not None else (start or None), gz)
    if pending is not None and (tail is None or tail[0] != last):
        yield pending
    if tail is not None:
        at, why = tail
        detail = ("the file ends inside the record" if why == "truncated_record" else "no WARC record starts")
        yield f"{path}:{at}", BadLine(str(path), at, why, f"{detail} at byte offset {at}")


def is_web_file(name: str) -> str | None:
    """"warc" / "html" for a web file name (compression suffixes allowed), else None."""
    n = name.lower()
    for c in (".gz", ".zst"):
        n = n.removesuffix(c)
    if n.endswith(".warc"):
        return "warc"
    if n.endswith((".html", ".htm", ".xhtml")):
        return "html"
    return None


def iter_web(path: str | os.PathLike) -> Iterator[tuple[str, dict | BadLine]]:
    p = Path(path)
    if is_web_file(p.name) == "warc":
        if p.name.lower().endswith(".zst"):
            raise FileNotFoundError(f"{p}: .warc.zst is not supported (use .warc or .warc.gz)")
        yield from iter_warc(p)
    else:
        yield from iter_html_file(p)
