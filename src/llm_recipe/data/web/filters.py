"""Japanese web boilerplate filters (after HojiChar's and llm-jp's corpus filters: document-level
rules with counted reasons, thresholds in config). HojiChar's DiscardBBSComments / DiscardAds
count keyword matches in the whole text (more than 14 drops) and llm-jp's tools divide the BBS
count by the number of words; here the unit is the line (a post, an ad slot), so one long
article with a few quotes or one 【PR】 line stays, and a thread or an affiliate page goes.

* `BBSComments`  `bbs_comments`: forum / BBS dumps (2ch-style threads, comment sections that
                 survived extraction). A line carries a BBS marker when it holds a reply anchor
                 (`>>123`), a post header (`12 ：名無しさん：2024/05/01(水) 12:34:56.78 ID:AbCd1234`),
                 a default poster name (`名無しさん`, `風吹けば名無し`), a poster ID (`ID:xxxxxxxx`)
                 or a posting-form line (`書き込む`, `書き込み欄`). Dropped when more than
                 `max_line_share` of the lines (and at least `min_matches`) carry one.
* `AdBoilerplate` `ads`: advertising and affiliate text (`【PR】`, `楽天市場で見る`, `今すぐ購入`,
                 `Sponsored`, `Check price on Amazon`, ...): dropped when more than `max_line_share`
                 of the lines (and at least `min_matches`) hold an ad phrase, or the document holds
                 `max_hits` of them.
* `NGWords`      `ng_words`: words from configurable lists (the bundled resources/web/ng_words.txt,
                 `files`, `words`); dropped with more than `max_hits` hits. Hits are counted per
                 word in the step's modifications (`ng:<word>`), so the audit shows which words act.
The text they see is normalized (NFKC: `＞＞１２` is `>>12`, `ＩＤ` is `ID`).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from ...config.curate import AdsConfig, BBSCommentsConfig, NGWordsConfig
from ..pipeline import Doc, Filter, Step, Tally

BBS_MARKERS = re.compile(
    r">>\s?\d{1,4}"  # reply anchors
    r"|名無し(?:さん|にかわりまして)?"  # default poster names
    r"|\bID:[A-Za-z0-9+/.]{6,}"  # poster ids
    r"|\d{4}/\d{1,2}/\d{1,2}\s?\(.\)\s?\d{1,2}:\d{2}:\d{2}"  # post timestamps 2024/05/01(水) 12:34:56
    r"|^\s*\d{1,4}\s*[:：]\s*\S.*[:：]\s*\d{4}/"  # post headers: `12 ：name：2024/...`
    r"|書き込(?:む|み欄|みをする)|^\s*書き込み\s*$",  # posting forms
    re.M,
)
AD_PHRASES = (
    "【PR】", "【広告】", "PR:", "スポンサーリンク", "広告を利用しています", "アフィリエイト", "楽天市場で", "楽天で詳細",
    "Amazonで", "Yahoo!ショッピングで", "今すぐ購入", "今すぐチェック", "今すぐクリック", "今すぐ登録", "最安値", "送料無料",
    "詳しくはこちら", "公式サイトはこちら", "お試しセット", "初回限定", "初回980円", "今だけ", "期間限定", "売れ筋ランキング",
    "ランキング1位", "クーポン", "ポイント10倍", "無料でお試し", "↓↓↓", "▼詳しく",
    "Sponsored", "Advertisement", "Buy now", "Shop now", "Check price", "Limited time offer", "affiliate link",
    "Free trial", "Click here", "Order now", "% off", "Use code",
)


def _lines(text: str) -> list[str]:
    return [s for s in (x.strip() for x in text.split("\n")) if s]


def _share_rule(matched: int, lines: int, max_share: float, min_matches: int) -> bool:
    return matched >= min_matches and matched / max(lines, 1) > max_share


class BBSComments(Filter):
    name = "bbs_comments"
    config_class = BBSCommentsConfig

    def reason(self, doc: Doc) -> str | None:
        c = self.config
        lines = _lines(doc["text"])
        matched = sum(1 for s in lines if BBS_MARKERS.search(s))
        return "bbs_comments" if _share_rule(matched, len(lines), c.max_line_share, c.min_matches) else None


class AdBoilerplate(Filter):
    name = "ads"
    config_class = AdsConfig

    def __init__(self, config: AdsConfig | None = None, /, **kw) -> None:
        super().__init__(config, **kw)
        phrases = [*AD_PHRASES, *self.config.extra_phrases]
        self.pattern = re.compile("|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True)), re.I)

    def reason(self, doc: Doc) -> str | None:
        c = self.config
        lines = _lines(doc["text"])
        hits = [len(self.pattern.findall(s)) for s in lines]
        if sum(hits) >= c.max_hits:
            return "ads"
        matched = sum(1 for h in hits if h)
        return "ads" if _share_rule(matched, len(lines), c.max_line_share, c.min_matches) else None


BUNDLED_NG = Path(__file__).resolve().parents[2] / "resources" / "web" / "ng_words.txt"


def load_word_list(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: NG-word list does not exist")
    words = (line.split("#", 1)[0].strip() for line in p.read_text(encoding="utf-8").splitlines())
    return [w for w in words if w]


class NGWords(Step):
    name = "ng_words"
    config_class = NGWordsConfig

    def __init__(self, config: NGWordsConfig | None = None, /, **kw) -> None:
        super().__init__(config, **kw)
        c = self.config
        words = [*(load_word_list(BUNDLED_NG) if c.bundled else []), *(w for f in c.files for w in load_word_list(f)),
                 *c.words]
        self.words = sorted({unicodedata.normalize("NFKC", w).lower() for w in words if w.strip()}, key=len,
                            reverse=True)
        self.pattern = re.compile("|".join(re.escape(w) for w in self.words), re.I) if self.words else None

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        if self.pattern is None:
            return batch
        kept = []
        for doc in batch:
            found = [m.group().lower() for m in self.pattern.finditer(doc["text"])]
            if len(found) > self.config.max_hits:
                for w in set(found):
                    tally.modified(f"ng:{w}", found.count(w))
                tally.drop(doc, "ng_words", sorted(set(found))[:10])
            else:
                kept.append(doc)
        return kept
