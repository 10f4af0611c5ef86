"""A noisy corpus with ground truth: clean docs + injected, labelled noise of known types.

Takes clean documents (the bundled sample corpus by default) and replaces a chosen number of
prose docs (web / wiki / books) per noise type with a corrupted version, recording for each
one what was injected and what a correct curation must do with it:

  action "drop"    spam          symbol runs and price spam (`!!!!!買って!!!! 5000円→500円!!!!`)
                   nav_menu      a page of menu entries (`Home`, `会社概要`, ...)
                   boilerplate   a little text drowned in repeated footers
                   wrong_language  German, French, Spanish, Chinese, Korean, Russian pages
                   blocklisted   a clean text served from a blocklisted (sub)domain
                   short         a few words (`Click here`, `ログイン`)
                   seo_keywords  Japanese keyword stuffing (kanji/katakana lists, no prose)
  action "repair"  mojibake      UTF-8 read as cp1252 (`æ—¥æœ¬èªž`); must come out as the original
                   replacement   `□□□` / `�` runs inserted; must come out as the original
                   width         full-width ASCII and vertical-writing punctuation
                   pii           emails, phones, cards, postal codes, IPs inserted; none may
                                 survive and each must become its typed placeholder

`inject_noise` returns the docs and a label per noisy doc id: `{"noise", "action", ...}` plus
`original` (repair types) or `pii` ([type, value] pairs). `generate_noisy_corpus` writes
`shards/{source}.jsonl` and `labels.jsonl`. Deterministic for a seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Iterable
from pathlib import Path

from ..files import read_json, write_json, write_jsonl
from .sample_corpus import iter_sample_docs

DROP_TYPES = ("spam", "nav_menu", "boilerplate", "wrong_language", "blocklisted", "short",
              "seo_keywords")
REPAIR_TYPES = ("mojibake", "replacement", "width", "pii")
NOISE_TYPES = DROP_TYPES + REPAIR_TYPES
PROSE_SOURCES = ("web", "wiki", "books")
BLOCKLIST = ("casino-bonus.example", "cheap-pills.example", "spam-links.example")

_SPAM_JA = ["!!!!!買って!!!!", "5000円→500円!!!!", "★★★激安★★★", "【今だけ】送料無料!!!", "◆◆限定◆◆",
            "＞＞＞今すぐクリック＜＜＜", "↓↓↓ここから↓↓↓", "￥1,000→￥100!!", "※※※在庫わずか※※※"]
_SPAM_EN = ["BUY NOW!!!!!", "$$$ 90% OFF $$$", "***FREE*** ***FREE***", ">>> CLICK HERE <<<",
            "!!! LIMITED !!!", "$999 -> $99 !!!", "### HOT DEAL ###", "=== WIN $$$ ==="]
_MENU_EN = ["Home", "About", "About us", "Contact", "Blog", "News", "Products", "Services", "Login",
            "Sign up", "Privacy", "Terms", "FAQ", "Careers", "Sitemap", "Support", "Shop", "Cart"]
_MENU_JA = ["ホーム", "会社概要", "お問い合わせ", "採用情報", "サイトマップ", "ニュース", "製品情報",
            "サービス", "ログイン", "新規登録", "よくある質問", "アクセス", "ブログ", "カート"]
_FOOTER_EN = ["Copyright © 2024 Example Media Inc. All rights reserved.",
              "Privacy Policy | Terms of Use | Cookie Settings",
              "Share this page: Twitter Facebook LINE"]
_FOOTER_JA = ["Copyright © 2024 株式会社エグザンプル All rights reserved.",
              "プライバシーポリシー | 利用規約 | お問い合わせ",
              "このページをシェアする: Twitter Facebook LINE"]
_SHORT = ["Click here", "ログイン", "Page 2 of 10", "Loading", "次へ", "OK", "Read more",
          "トップへ戻る", "404 Not Found", "Subscribe"]
_SEO_JA = ["格安", "ホテル", "予約", "東京", "最安値", "比較", "口コミ", "人気", "ランキング", "通販",
           "送料無料", "激安", "公式", "セール", "限定", "クーポン", "割引", "大阪", "温泉", "旅館"]
_FOREIGN = {
    "de": ["Heute war das Wetter in Berlin sehr schön und die Menschen gingen in den Park.",
           "Der Zug nach München fährt jeden Morgen um acht Uhr vom Hauptbahnhof ab.",
           "Meine Großmutter backt am Wochenende immer einen Apfelkuchen für die ganze Familie.",
           "Die Universität bietet viele Kurse in Geschichte und Philosophie an.",
           "Wir haben im Sommer eine lange Wanderung durch die Alpen gemacht.",
           "Das neue Museum zeigt Gemälde aus dem neunzehnten Jahrhundert."],
    "fr": ["Aujourd'hui, il fait beau à Paris et les cafés sont pleins de monde.",
           "Le train pour Lyon part tous les matins à huit heures de la gare.",
           "Ma grand-mère prépare toujours une tarte aux pommes le dimanche.",
           "L'université propose de nombreux cours d'histoire et de philosophie.",
           "Nous avons fait une longue randonnée dans les montagnes cet été.",
           "Le nouveau musée présente des peintures du dix-neuvième siècle."],
    "es": ["Hoy hace muy buen tiempo en Madrid y la gente pasea por el parque.",
           "El tren a Barcelona sale todas las mañanas a las ocho de la estación.",
           "Mi abuela siempre prepara una tarta de manzana los domingos.",
           "La universidad ofrece muchos cursos de historia y filosofía.",
           "Este verano hicimos una larga caminata por las montañas del norte.",
           "El nuevo museo muestra pinturas del siglo diecinueve."],
    "zh": ["今天北京的天气很好，很多人去公园散步。", "去上海的火车每天早上八点从车站出发。",
           "我的奶奶每个星期天都会做苹果派给全家人吃。", "这所大学提供很多历史和哲学方面的课程。",
           "今年夏天我们在山里进行了一次很长的徒步旅行。", "新的博物馆展出了十九世纪的绘画作品。"],
    "ko": ["오늘 서울의 날씨가 아주 좋아서 많은 사람들이 공원에서 산책했습니다.",
           "부산으로 가는 기차는 매일 아침 여덟 시에 역에서 출발합니다.",
           "우리 할머니는 일요일마다 가족을 위해 사과 파이를 만드십니다.",
           "이 대학교는 역사와 철학에 관한 많은 강의를 제공합니다.",
           "올해 여름에 우리는 산에서 긴 등산을 했습니다.",
           "새 박물관은 십구 세기의 그림들을 전시하고 있습니다."],
    "ru": ["Сегодня в Москве очень хорошая погода, и люди гуляют в парке.",
           "Поезд в Санкт-Петербург отправляется каждое утро в восемь часов.",
           "Моя бабушка всегда печёт яблочный пирог по воскресеньям.",
           "Университет предлагает много курсов по истории и философии.",
           "Этим летом мы совершили длинный поход по горам.",
           "Новый музей показывает картины девятнадцатого века."],
}
_VERTICAL = {"。": "︒", "、": "︑", "「": "﹁", "」": "﹂", "(": "︵", ")": "︶"}


def _sloppy_cp1252(b: bytes) -> str:
    """Decode like a Windows program that assumed cp1252 (undefined bytes as latin-1)."""
    out = []
    for x in b:
        try:
            out.append(bytes([x]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(x))
    return "".join(out)


def _luhn_card(r: random.Random) -> str:
    digits = [4] + [r.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):  # check digit position is i = -1
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    sep = r.choice([" ", "-", ""])
    return sep.join(s[i : i + 4] for i in range(0, 16, 4))


def _pii_values(r: random.Random) -> list[tuple[str, str]]:
    user = r.choice(["taro", "hanako", "alice", "ben", "info", "support"]) + str(r.randrange(100))
    email = f"{user}@{r.choice(['example.co.jp', 'mail.example.com', 'example.org'])}"
    phone = r.choice([
        f"03-{r.randrange(1000, 9999)}-{r.randrange(1000, 9999)}",
        f"090-{r.randrange(1000, 9999)}-{r.randrange(1000, 9999)}",
        f"080{r.randrange(10**7, 10**8)}",
        f"+81 90-{r.randrange(1000, 9999)}-{r.randrange(1000, 9999)}",
        f"06({r.randrange(1000, 9999)}){r.randrange(1000, 9999)}",
        f"+44 20 {r.randrange(1000, 9999)} {r.randrange(1000, 9999)}",
        f"({r.randrange(200, 999)}) {r.randrange(200, 999)}-{r.randrange(1000, 9999)}",
    ])
    ip = r.choice([f"192.168.{r.randrange(256)}.{r.randrange(1, 255)}",
                   f"2001:db8::{r.randrange(1, 0xffff):x}"])
    values = [("EMAIL", email), ("PHONE", phone), ("CREDIT_CARD", _luhn_card(r)),
              ("POSTAL_CODE", f"{r.randrange(100, 999)}-{r.randrange(1000, 9999)}"),
              ("IP_ADDRESS", ip)]
    return r.sample(values, r.randint(2, 4))


def _pii_lines(pii: list[tuple[str, str]], ja: bool) -> list[str]:
    ja_fmt = {"EMAIL": "メール: {}", "PHONE": "電話番号は{}です。", "CREDIT_CARD": "カード番号 {} で支払いました。",
              "POSTAL_CODE": "〒{} 東京都千代田区", "IP_ADDRESS": "接続元IPは{}でした。"}
    en_fmt = {"EMAIL": "Email me at {} for details.", "PHONE": "Call {} after 6 pm.",
              "CREDIT_CARD": "I paid with card {} yesterday.", "POSTAL_CODE": "〒{} Chiyoda, Tokyo",
              "IP_ADDRESS": "The server at {} was down."}
    fmt = ja_fmt if ja else en_fmt
    return [fmt[t].format(v) for t, v in pii]


def _is_ja(text: str) -> bool:
    return any("\u3040" <= c <= "\u30ff" for c in text)


def _corrupt(kind: str, doc: dict, r: random.Random) -> dict:
    """Return the label for `doc` after corrupting it in place with noise `kind`."""
    text, ja = doc["text"], _is_ja(doc["text"])
    label: dict = {"noise": kind, "action": "repair" if kind in REPAIR_TYPES else "drop"}
    if kind == "spam":
        bank = _SPAM_JA if ja else _SPAM_EN
        doc["text"] = "\n".join(" ".join(r.choices(bank, k=r.randint(2, 4))) for _ in range(r.randint(3, 7)))
    elif kind == "nav_menu":
        bank = _MENU_JA if ja else _MENU_EN
        doc["text"] = "\n".join(r.sample(bank, r.randint(10, 14)))
    elif kind == "boilerplate":
        first = text.split("\n")[0]
        footer = "\n".join(_FOOTER_JA if ja else _FOOTER_EN)
        doc["text"] = first + "\n\n" + "\n\n".join([footer] * r.randint(3, 6))
    elif kind == "wrong_language":
        lang = r.choice(sorted(_FOREIGN))
        doc["text"] = " ".join(r.sample(_FOREIGN[lang], r.randint(3, 6)))
        label["language"] = lang
    elif kind == "blocklisted":
        doc["url"] = f"https://{r.choice(['www.', 'm.', 'ads.', ''])}{r.choice(BLOCKLIST)}/page/{r.randrange(10**6)}"
    elif kind == "short":
        doc["text"] = r.choice(_SHORT)
    elif kind == "seo_keywords":
        doc["text"] = "\n".join(" ".join(r.choices(_SEO_JA, k=r.randint(6, 10))) for _ in range(r.randint(4, 8)))
    elif kind == "mojibake":
        doc["text"] = _sloppy_cp1252(text.encode("utf-8"))
        label["original"] = text
    elif kind == "replacement":
        chars = list(text)
        for _ in range(r.randint(1, 3)):
            pos = r.randrange(len(chars) + 1)
            chars.insert(pos, r.choice(["□□□", "\ufffd", "\ufffd\ufffd", "□□□□□"]))
        doc["text"] = "".join(chars)
        label["original"] = text
    elif kind == "width":
        wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and r.random() < 0.7 else c for c in text)
        doc["text"] = "".join(_VERTICAL.get(c, c) if r.random() < 0.5 else c for c in wide)
        label["original"] = text
    elif kind == "pii":
        pii = _pii_values(r)
        lines = text.split("\n")
        for line in _pii_lines(pii, ja):
            lines.insert(r.randrange(len(lines) + 1), line)
        doc["text"] = "\n".join(lines)
        label["pii"] = [list(p) for p in pii]
    else:
        raise ValueError(f"unknown noise type {kind!r}; known: {NOISE_TYPES}")
    return label


def inject_noise(
    clean_docs: Iterable[dict],
    *,
    per_type: int = 25,
    types: Iterable[str] = NOISE_TYPES,
    sources: Iterable[str] = PROSE_SOURCES,
    seed: int = 0,
) -> tuple[list[dict], dict[str, dict]]:
    """Corrupt `per_type` eligible docs per noise type; returns (all docs, labels by id)."""
    r = random.Random(f"noise-{seed}")
    docs = [{**d, "meta": dict(d.get("meta") or {})} for d in clean_docs]
    sources = set(sources)
    pool = [i for i, d in enumerate(docs) if d["source"] in sources]
    r.shuffle(pool)
    labels: dict[str, dict] = {}
    for kind in types:
        # mojibake and ruby-free width noise need non-ASCII / ASCII text to act on
        need = {"mojibake": lambda d: not d["text"].isascii()}.get(kind, lambda d: True)
        picked = [i for i in pool if need(docs[i])][:per_type]
        if len(picked) < per_type:
            raise ValueError(f"only {len(picked)} eligible docs left for noise '{kind}' (need {per_type}): lower "
                             "curate.input.sample_noise_per_type or raise corpus.docs_per_source")
        taken = set(picked)
        pool = [i for i in pool if i not in taken]
        for i in picked:
            labels[docs[i]["id"]] = _corrupt(kind, docs[i], r)
    return docs, labels


def generate_noisy_corpus(
    out_dir: str | os.PathLike, *, docs_per_source: int = 150, per_type: int = 25, seed: int = 0,
    clean_docs: Iterable[dict] | None = None,
) -> Path:
    """Write `shards/{source}.jsonl` and `labels.jsonl` (one label per noisy doc id).

    Idempotent for the bundled corpus: a directory already holding the same parameters
    (`manifest.json`, written last) is left untouched, so re-runs can resume on it.
    """
    out = Path(out_dir)
    manifest = {"docs_per_source": docs_per_source, "per_type": per_type, "seed": seed}
    if clean_docs is None and (out / "manifest.json").exists():
        with contextlib.suppress(ValueError):
            if read_json(out / "manifest.json") == manifest:
                return out
    clean = list(clean_docs) if clean_docs is not None else list(iter_sample_docs(docs_per_source, seed))
    docs, labels = inject_noise(clean, per_type=per_type, seed=seed)
    by_source: dict[str, list[dict]] = {}
    for d in docs:
        by_source.setdefault(d["source"], []).append(d)
    for source, items in by_source.items():
        write_jsonl(out / "shards" / f"{source}.jsonl", items)
    write_jsonl(out / "labels.jsonl", ({"id": k, **v} for k, v in sorted(labels.items())))
    if clean_docs is None:
        write_json(out / "manifest.json", manifest)
    return out


def load_labels(corpus_dir: str | os.PathLike) -> dict[str, dict]:
    with open(Path(corpus_dir) / "labels.jsonl", encoding="utf-8") as f:
        return {rec.pop("id"): rec for rec in map(json.loads, f)}
