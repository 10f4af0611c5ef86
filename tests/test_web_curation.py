"""Web pages in curation: the WARC / HTML reader and its bad input, main-content extraction on the
labelled pages, the Japanese web filters, per-site boilerplate, decontamination, and the web
example end to end (stats funnel and report)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from llm_recipe.config import CurateConfig
from llm_recipe.config.curate import DecontaminateConfig, ExtractConfig
from llm_recipe.data.curate import curate
from llm_recipe.data.decontam import Decontaminate
from llm_recipe.data.filters import DomainBlocklist
from llm_recipe.data.normalize import html_to_text
from llm_recipe.data.pipeline import run_steps
from llm_recipe.data.web.extract import Extract, extract_main, extraction_scores
from llm_recipe.data.web.filters import AdBoilerplate, BBSComments, NGWords
from llm_recipe.demo.web_pages import (
    labelled_pages,
    sample_crawl,
    write_labelled_pages,
    write_web_sample,
)
from llm_recipe.record_sources import iter_source
from llm_recipe.web_records import decode_page

PAGE = "<html><head><title>t</title></head><body><article><h1>見出し</h1><p>{}</p></article></body></html>"


def _warc(path: Path, bodies: list[tuple[str, bytes, str]], gz: bool) -> list[int]:
    """A WARC of response records (url, body, content type); returns each record's byte offset."""
    offsets = []
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=gz)
        for url, body, ctype in bodies:
            offsets.append(f.tell())
            h = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=h,
                                                length=len(body)))
    return offsets


def _read(path) -> tuple[list[dict], list]:
    docs, bad = [], []
    for _, rec in iter_source(path):
        (docs if isinstance(rec, dict) else bad).append(rec)
    return docs, bad


def test_warc_reader_keeps_headers_and_decodes_japanese_charsets(tmp_path):
    path = write_web_sample(tmp_path)
    docs, bad = _read(path)
    recs = sample_crawl()
    html = [r for r in recs if r["content_type"].startswith("text/html") and r["kind"] != "undecidable_charset"]
    assert len(docs) == len(html)  # request / metadata / warcinfo records are not pages
    assert sorted(b.reason for b in bad) == ["not_html", "undecidable_charset"]
    assert all(f":{b.line}" in str(b) and b.line > 0 for b in bad)  # file and byte offset named
    by_url = {d["url"]: d for d in docs}
    for page in labelled_pages():
        d = by_url[page.url]
        m = d["meta"]
        assert m["format"] == "html" and m["content_type"] == "text/html" and m["warc_date"].startswith("2024-05")
        assert d["id"] == m["warc_record_id"] and d["id"].startswith("urn:uuid:")
        assert page.title.split("、")[0][:6] in d["text"]  # decoded right, whatever the charset
        expect = {"meta": "meta", "header": "header", "none": "detected"}[page.site.declare]
        assert m["charset_from"] == expect, (page.url, m)
        if page.site.encoding == "shift_jis":
            assert m["charset"] == "cp932"
        if page.site.encoding == "euc-jp":
            assert m["charset"] == "euc_jis_2004"


@pytest.mark.parametrize("enc", ["shift_jis", "euc_jp", "iso2022_jp", "utf-8"])
def test_charset_detection_without_any_declaration(enc):
    text = PAGE.format("日本語のウェブページは、今でもシフトJISやEUC-JPで書かれていることがある。文字コードの判定を誤ると文字化けになる。")
    decoded = decode_page(text.encode(enc))
    assert decoded is not None and decoded[0] == text and decoded[2] in ("detected", "iso2022")
    assert decode_page(text.encode("cp932"), declared="euc-jp")[0] == text  # a lying header is overruled
    # a server's default latin-1 is weak: the bytes are Japanese, so they are read as Japanese
    if enc != "iso2022_jp":
        assert decode_page(text.encode(enc), declared="ISO-8859-1")[0] == text
    western = "<p>Café crème brûlée, a naïve résumé.</p>"
    assert decode_page(western.encode("cp1252"), declared="ISO-8859-1")[:3] == (western, "cp1252", "header")


def test_bad_warc_input_is_a_counted_skip_naming_file_and_offset(tmp_path):
    ok = [(f"https://a.example/{i}", PAGE.format(f"本文{i}です。" * 20).encode(), "text/html; charset=utf-8")
          for i in range(6)]
    # a record without payload, and a 200 MB page (skipped unread)
    big = tmp_path / "big.warc"
    offs = _warc(big, [ok[0], ("https://a.example/empty", b"", "text/html")], gz=False)
    with open(big, "ab") as f:
        offs.append(f.tell())
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
        f.write(b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: https://a.example/huge\r\n"
                b"WARC-Date: 2024-05-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000000>\r\n"
                b"Content-Type: application/http; msgtype=response\r\n"
                b"Content-Length: %d\r\n\r\n" % (len(http) + (200 << 20)) + http)
        for _ in range(200):
            f.write(b"<p>xxxxx" * (1 << 17))  # 1 MB
        f.write(b"\r\n\r\n")
    offs.append(big.stat().st_size)
    with open(big, "ab") as f:
        WARCWriter(f, gzip=False).write_record(WARCWriter(None, gzip=False).create_warc_record(
            ok[1][0], "response", payload=io.BytesIO(ok[1][1]), length=len(ok[1][1]),
            http_headers=StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")))
    big_offs = offs
    # truncated: gzip and plain, cut inside the last record
    for gz in (True, False):
        p = tmp_path / f"t.warc{'.gz' if gz else ''}"
        offs = _warc(p, ok, gz=gz)
        p.write_bytes(p.read_bytes()[: offs[-1] + 40])
        docs, bad = _read(p)
        assert len(docs) == 5 and [(b.reason, b.line) for b in bad] == [("truncated_record", offs[-1])]
    # a corrupt gzip member: skipped, and the records after it are still read
    p = tmp_path / "c.warc.gz"
    offs = _warc(p, ok, gz=True)
    data = bytearray(p.read_bytes())
    data[offs[2] + 30: offs[2] + 60] = b"\x00" * 30
    p.write_bytes(bytes(data))
    docs, bad = _read(p)
    assert [d["url"] for d in docs] == [u for i, (u, _, _) in enumerate(ok) if i != 2]
    assert [(b.reason, b.line) for b in bad] == [("corrupt_gzip", offs[2])]
    # through curation: counted under `read`, listed with file:offset, no exception; the pages kept
    res = curate(CurateConfig.model_validate({"executor": {"progress": False, "workers": 1}}), tmp_path / "out",
                 inputs=[big, p])
    assert res.stats["steps"]["read"]["dropped"] == {"no_payload": 1, "too_large": 1, "corrupt_gzip": 1}
    assert res.stats["steps"]["read"]["docs_out"] == 2 + 5
    where = {b["reason"]: b["where"] for b in res.stats["bad_input"]}
    assert where == {"no_payload": f"{big}:{big_offs[1]}", "too_large": f"{big}:{big_offs[2]}",
                     "corrupt_gzip": f"{p}:{offs[2]}"}


def test_html_files_and_folders_are_read_one_record_per_page(tmp_path):
    write_labelled_pages(tmp_path)
    docs, bad = _read(tmp_path / "pages")
    assert len(docs) == 32 and not bad
    assert {d["meta"]["charset"] for d in docs} >= {"cp932", "euc_jis_2004", "utf-8"}
    page = tmp_path / "one.html"
    page.write_text('<html><head><link rel="canonical" href="https://a.example/x"></head><body><p>本文</p></body></html>',
                    encoding="utf-8")
    (_, rec), = list(iter_source(page))
    assert rec["url"] == "https://a.example/x" and rec["id"] == "one"


def test_extraction_beats_the_regex_path_on_the_labelled_pages():
    pages = labelled_pages()
    ours = [extraction_scores(extract_main(p.html)[0], p.label) for p in pages]
    regex = [extraction_scores(html_to_text(p.html)[0], p.label) for p in pages]
    mean = [sum(x[i] for x in ours) / len(ours) for i in (0, 1)]
    assert mean[0] >= 0.9 and mean[1] >= 0.9, mean
    assert mean[0] >= sum(x[0] for x in regex) / len(regex) + 0.3  # nav, footers, ads, comments gone
    kinkaku = next(p for p in pages if "金閣寺" in p.title)
    text, n_ruby = extract_main(kinkaku.html)
    assert n_ruby == 4 and "金閣寺と銀閣寺" in text and "きんかくじ" not in text  # ruby: base text only
    assert "Cookie" not in text and "同意する" not in text


def test_extract_step_only_touches_web_records_and_counts_empty_pages():
    docs = [{"id": "a", "text": labelled_pages()[0].html, "source": "web", "url": None, "meta": {"format": "html"}},
            {"id": "b", "text": "<p>plain <b>text</b> record</p>", "source": "web", "url": None, "meta": {}},
            {"id": "c", "text": "<html><body><script>x()</script></body></html>", "source": "web",
             "url": None, "meta": {"format": "html"}}]
    res = run_steps([Extract()], docs)
    assert [d["id"] for d in res.kept] == ["a", "b"] and res.kept[1]["text"].startswith("<p>")
    assert res.stats["extract"].dropped == {"no_main_content": 1}
    assert res.kept[0]["meta"]["format"] == "text" and "<" not in res.kept[0]["text"]
    cat = "<html><body><article><p>Cats sleep a lot during the day and hunt at night.</p></article></body></html>"
    res = run_steps([Extract(apply_to="html")], [dict(docs[1], text=cat, meta={})])
    assert res.kept[0]["text"] == "Cats sleep a lot during the day and hunt at night."
    assert Extract(ExtractConfig(backend="resiliparse")).config.backend == "resiliparse"


def _doc(text: str, url: str | None = None) -> dict:
    return {"id": text[:10], "text": text, "source": "web", "url": url, "meta": {}}


def test_bbs_ads_and_ng_word_filters(tmp_path):
    thread = "\n".join(f"{i} :名無しさん:2024/05/01(水) 12:3{i % 10}:00.00 ID:Ab{i}cdEfgh\n>>{max(i - 1, 1)} それな"
                       for i in range(1, 9))
    article = ("新しい図書館が駅前に開館した。蔵書は約十万冊で、学習室も備えている。\n"
               "開館式では市長が「>>本を通じて人が集まる場に」とあいさつした。\n" * 3)
    res = run_steps([BBSComments()], [_doc(thread), _doc(article)])
    assert [d["text"] for d in res.kept] == [article] and res.stats["bbs_comments"].dropped == {"bbs_comments": 1}
    ad = "\n".join(["人気サプリ比較", "【PR】今だけ初回980円", "楽天市場で詳細を見る", "Amazonで詳細を見る", "公式サイトはこちら"])
    one_pr = article + "\n【PR】この記事は広告を含みます"
    res = run_steps([AdBoilerplate()], [_doc(ad), _doc(one_pr)])
    assert [d["text"] for d in res.kept] == [one_pr] and res.stats["ads"].dropped == {"ads": 1}
    words = tmp_path / "ng.txt"
    words.write_text("# custom list\n禁止語\n", encoding="utf-8")
    step = NGWords(bundled=True, files=[words])
    res = run_steps([step], [_doc("ここに禁止語がある。"), _doc("出会い系サイトの案内"), _doc(article)], keep_dropped=True)
    assert [d["text"] for d in res.kept] == [article]
    assert res.stats["ng_words"].modified == {"ng:禁止語": 1, "ng:出会い系": 1}
    assert NGWords(bundled=False, max_hits=1, words=["foo"]).process([_doc("foo foo")], _tally()) == []
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        NGWords(files=[tmp_path / "missing.txt"])


def _tally():
    from llm_recipe.data.pipeline import StepStats, Tally

    return Tally("t", StepStats(), None)


def test_domain_allow_and_deny_lists():
    step = DomainBlocklist(allow=["good.example"], domains=["bad.good.example"])
    docs = [_doc("a", "https://www.good.example/x"), _doc("b", "https://bad.good.example/x"),
            _doc("c", "https://other.example/"), _doc("d")]
    res = run_steps([step], docs)
    assert [d["text"] for d in res.kept] == ["a", "d"]
    assert res.stats["blocklist"].dropped == {"blocklisted_domain": 1, "not_allowlisted": 1}


def test_decontamination_finds_planted_items_and_keeps_clean_documents(tmp_path):
    bench = tmp_path / "mybench.jsonl"
    long_en = ("A farmer has seventeen sheep and all but nine run away through a hole in the fence; "
               "how many sheep does the farmer have left at the end of the day?")
    long_ja = "ある農家は十七匹の羊を飼っていたが、九匹を残してすべてが柵の穴から逃げ出した。農家の手元には何匹の羊が残っているか。"
    bench.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "q1", "question": long_en}, {"id": "q2", "question": long_ja},
        {"id": "q3", "question": "Name the tallest mountain in the whole of Africa please."},
        {"id": "q4", "question": "Too short."},
        {"id": "sft-7", "messages": [{"role": "user", "content": "Explain in two sentences why the sky looks blue "
                                                                  "on a clear day and red at sunset."},
                                     {"role": "assistant", "content": "Because of Rayleigh scattering."}]}]),
        encoding="utf-8")
    step = Decontaminate(DecontaminateConfig(files=[bench]))
    assert step.report["items_too_short"] >= 1
    clean = [_doc("The farmer counted his sheep every evening and found that none had run away through the fence."),
             _doc("ある農家は羊を飼っている。柵の穴はきちんと直したので、逃げ出した羊は一匹もいない。"),
             _doc("Name the tallest mountain in Europe.")]
    planted = [_doc("Puzzle of the week: " + long_en.replace("fence;", "fence ;").upper() + " Answer below."),
               _doc("今日のクイズ。" + long_ja.replace("、", " ") + "答えは明日。"),
               _doc("Quiz: name the tallest mountain in the whole of Africa, please!"),
               _doc("I believe the capital of Canada is Toronto. What is the capital of Canada? Asked my uncle."),
               _doc("Homework: explain in two sentences why the sky looks blue on a clear day and red at sunset.")]
    res = run_steps([step], clean + planted, keep_dropped=True)
    assert [d["text"] for d in res.kept] == [d["text"] for d in clean]
    assert res.stats["decontaminate"].dropped == {"contaminated": 5}
    assert dict(res.stats["decontaminate"].modified) == {"mybench#q1": 1, "mybench#q2": 1, "mybench#q3": 1,
                                                         "sycophancy-v1#syc-en-02": 1, "mybench#sft-7": 1}
    assert [d["drop"]["detail"] for d in res.dropped][0] == ["mybench#q1"]
    report = Decontaminate(DecontaminateConfig(files=[bench], action="report", eval_sets=False))
    res = run_steps([report], planted[:2])
    assert len(res.kept) == 2 and res.kept[1]["meta"]["contamination"] == ["mybench#q2"]


def test_web_example_end_to_end_funnel_and_report(tmp_path):
    from llm_recipe.report.html import write_report

    path = write_web_sample(tmp_path / "crawl")
    cfg = CurateConfig.model_validate({
        "output": {"keep_dropped": True}, "executor": {"workers": 1, "progress": False},
        "web": {"bbs_comments": {"enabled": True}, "ads": {"enabled": True}, "ng_words": {"enabled": True},
                "site_boilerplate": {"enabled": True}},
        "blocklist": {"domains": ["spam-farm.example"]}, "gopher_quality": {"min_doc_words": 20}})
    res = curate(cfg, tmp_path / "run" / "curated", inputs=[path])
    s = res.stats["steps"]
    expect = {r["kind"]: r["expect"] for r in sample_crawl()}
    assert s["read"]["dropped"] == {"not_html": 1, "undecidable_charset": 1}
    assert s["bbs_comments"]["dropped"] == {"bbs_comments": 3} and s["ads"]["dropped"] == {"ads": 3}
    assert s["ng_words"]["dropped"] == {"ng_words": 1} and s["blocklist"]["dropped"] == {"blocklisted_domain": 1}
    assert s["decontaminate"]["dropped"] == {"contaminated": 2}
    assert s["site_boilerplate"]["modified"]["lines_removed"] > 0
    assert expect["bbs_thread"] == "bbs_comments"
    kept = [json.loads(x) for f in res.files for x in Path(f).read_text(encoding="utf-8").splitlines()]
    labels = {p.url: p.label for p in labelled_pages()}
    assert sorted(d["url"] for d in kept) == sorted(labels)  # every article kept, nothing else
    scores = [extraction_scores(d["text"], labels[d["url"]]) for d in kept]
    assert min(r for _, r in scores) >= 0.85 and sum(p for p, _ in scores) / len(scores) >= 0.95
    html = write_report(tmp_path / "run").read_text(encoding="utf-8")
    for reason in ("bbs_comments", "ng_words", "contaminated", "undecidable_charset", "lines_removed"):
        assert reason in html


def test_a_cut_gzip_member_and_a_file_that_is_no_warc_are_named(tmp_path):
    p = tmp_path / "x.warc.gz"
    p.write_bytes(gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 500\r\n\r\nshort")[:-10])
    docs, bad = _read(p)
    assert not docs and [(b.reason, b.line) for b in bad] == [("truncated_record", 0)]
    q = tmp_path / "notes.warc"
    q.write_text("these are my notes, not a crawl\n", encoding="utf-8")
    docs, bad = _read(q)
    assert not docs and [(b.reason, b.line) for b in bad] == [("corrupt_warc", 0)]


def test_the_record_cap_travels_with_the_reader_to_worker_processes(tmp_path):
    import pickle

    from llm_recipe.data.readers import ShardReader
    from llm_recipe.files import max_record_bytes, set_max_record_bytes

    p = tmp_path / "w.warc"
    _warc(p, [("https://a.example/big", PAGE.format("長い本文。" * 3000).encode(), "text/html; charset=utf-8")], gz=False)
    default = max_record_bytes()
    try:
        set_max_record_bytes(20_000)  # what the CLI sets from max_record_mb, in the main process
        reader = ShardReader()
        set_max_record_bytes(default)  # a spawned worker starts with the default ...
        recs = list(pickle.loads(pickle.dumps(reader)).read(p))  # ... and gets the cap from the reader
        assert [r.reason for r in recs] == ["too_large"]
    finally:
        set_max_record_bytes(default)
