"""Labelled web pages and a synthetic WARC crawl, generated from the articles of `web_articles`.

`labelled_pages()` -> 32 `Page`s (16 Japanese, 16 English) on 8 sites with 4 layouts:
  news    HTML5 (header/nav/article/aside/footer), breadcrumb, ads, ranking, cookie banner
  blog    an old table layout: sidebar, archives, affiliate box, a comment section
          (BBS-style `名無しさん ... ID:xxxx` on the Japanese site)
  wiki    MediaWiki-like: table of contents, [編集]/[edit] links, navbox, categories
  column  div soup without semantic tags: share buttons, author box, pagination, newsletter,
          product boxes with affiliate links, cookie banner
Japanese pages are UTF-8, Shift_JIS (declared in a meta tag) or EUC-JP (declared only in the HTTP
header), and one site declares nothing (detection). Each page's `label` is its main text: title,
headings and paragraphs, ruby readings left out (`<ruby>漢字<rt>かんじ</rt></ruby>` -> 漢字).

`write_web_sample(dir)` writes `crawl.warc.gz` (the labelled pages plus pages every web filter has
something to remove from: BBS threads, affiliate pages, NG words, a denied domain, a page holding
an evaluation-set prompt, a record whose charset cannot be decided, non-HTML responses, request
and metadata records) and `labels.jsonl` (per page: url, kind, the filter that must act, label).
Deterministic; no logic here is used by a component.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write, write_json, write_jsonl
from .web_articles import ARTICLES_EN, ARTICLES_JA


@dataclass(frozen=True)
class Site:
    host: str
    lang: str
    layout: str
    encoding: str  # what the bytes are encoded in
    declare: str  # "meta": <meta charset>, "header": HTTP Content-Type only, "none": nothing
    name: str


SITES = [
    Site("www.hinode-news.example", "ja", "news", "utf-8", "meta", "日の出ニュース"),
    Site("kurashi-blog.example", "ja", "blog", "shift_jis", "meta", "くらしの手帖ブログ"),
    Site("machi-wiki.example", "ja", "wiki", "euc-jp", "header", "まち百科"),
    Site("manabi-column.example", "ja", "column", "utf-8", "none", "まなびコラム"),
    Site("www.daily-ledger.example", "en", "news", "utf-8", "meta", "The Daily Ledger"),
    Site("kitchen-notes.example", "en", "blog", "utf-8", "header", "Kitchen Notes"),
    Site("open-wiki.example", "en", "wiki", "utf-8", "meta", "OpenWiki"),
    Site("gadget-column.example", "en", "column", "windows-1252", "meta", "Gadget Column"),
]

_RUBY = re.compile(r"\{([^|{}]+)\|([^|{}]+)\}")

CHROME = {
    "ja": {
        "nav": ["トップ", "ニュース", "政治", "経済", "社会", "国際", "スポーツ", "エンタメ", "暮らし", "地域", "特集", "動画"],
        "crumb": ["ホーム", "暮らし"],
        "cookie": "当サイトではサービス向上のためにCookieを使用しています。サイトを閲覧し続けることで、Cookieの使用に同意したものとみなされます。",
        "cookie_btn": ["同意する", "設定"],
        "ads": ["【PR】今なら初月無料！動画配信サービスを今すぐチェック", "【広告】話題の青汁、お試しセット980円（税込）送料無料",
                "＼楽天ランキング1位獲得／ 人気の枕で朝までぐっすり"],
        "related": "関連記事", "ranking": "アクセスランキング", "share": ["Xでポスト", "Facebookでシェア", "LINEで送る", "はてなブックマーク"],
        "footer": ["会社概要", "プライバシーポリシー", "利用規約", "お問い合わせ", "広告掲載について", "サイトマップ"],
        "copyright": "Copyright © 2024 {name} All Rights Reserved. 記事・写真の無断転載を禁じます。",
        "author": "この記事を書いた人：編集部　暮らしと文化の話題を中心にお届けしています。",
        "archives": "月別アーカイブ", "categories": "カテゴリー", "comments": "コメント",
        "comment_form": "コメントを書き込む", "name": "名前", "toc": "目次", "edit": "編集", "categories_label": "カテゴリ",
        "newsletter": "メールマガジン登録で最新記事をお届けします。", "subscribe": "登録する",
        "prev": "前の記事", "next": "次の記事", "pages": ["1", "2", "3", "次へ"],
        "affiliate": ["Amazonで見る", "楽天市場で見る", "Yahoo!ショッピングで見る"],
        "updated": "更新日", "search": "サイト内検索",
        "wiki_footer": ["このページの最終更新日時は 2024年5月1日 (水) 10:00 です。",
                        "テキストはクリエイティブ・コモンズ 表示-継承ライセンスのもとで利用できます。"],
    },
    "en": {
        "nav": ["Home", "World", "Politics", "Business", "Tech", "Science", "Health", "Sports", "Culture", "Opinion", "Video"],
        "crumb": ["Home", "Local"],
        "cookie": "We use cookies to improve your experience, analyse traffic and show personalised ads. By continuing to browse, you agree to our use of cookies.",
        "cookie_btn": ["Accept all", "Manage settings"],
        "ads": ["Advertisement: Save 40% on premium noise-cancelling headphones today only",
                "Sponsored: This one weird trick cuts your energy bill in half",
                "Ad: Start your free 30-day trial of StreamMax now"],
        "related": "Related stories", "ranking": "Most read", "share": ["Share on X", "Share on Facebook", "Email", "Copy link"],
        "footer": ["About us", "Privacy policy", "Terms of use", "Contact", "Advertise with us", "Sitemap"],
        "copyright": "Copyright © 2024 {name}. All rights reserved. Reproduction without permission is prohibited.",
        "author": "About the author: our editorial team covers food, science and everyday life.",
        "archives": "Archives", "categories": "Categories", "comments": "Comments",
        "comment_form": "Leave a reply", "name": "Name", "toc": "Contents", "edit": "edit", "categories_label": "Categories",
        "newsletter": "Sign up for our newsletter and get the best stories every week.", "subscribe": "Subscribe",
        "prev": "Previous post", "next": "Next post", "pages": ["1", "2", "3", "Next"],
        "affiliate": ["Check price on Amazon", "Buy at Best Buy", "See deal at Walmart"],
        "updated": "Updated", "search": "Search this site",
        "wiki_footer": ["This page was last edited on 1 May 2024, at 10:00.",
                        "Text is available under the Creative Commons Attribution-ShareAlike License."],
    },
}

COMMENTS = {
    "ja": ["とても参考になりました。来年はぜひ挑戦してみたいと思います。", "写真がきれいですね。続きの記事も楽しみにしています。",
           "うちの近所でも同じような取り組みがあります。", "わかりやすい説明をありがとうございます。"],
    "en": ["Great article, thanks for sharing!", "I tried this last weekend and it worked perfectly.",
           "Does anyone know if this also applies in winter?", "Bookmarked. Looking forward to the next part."],
}
# 2ch-style comment headers (the Japanese blog's comment section)
BBS_NAMES = ["名無しさん@お腹いっぱい。", "名無しさん", "以下、名無しにかわりましてVIPがお送りします", "風吹けば名無し"]


@dataclass
class Page:
    url: str
    site: Site
    html: str
    label: str
    title: str

    @property
    def lang(self) -> str:
        return self.site.lang

    def body(self) -> bytes:
        return self.html.encode(self.site.encoding, errors="xmlcharrefreplace")

    def content_type(self) -> str:
        if self.site.declare == "header":
            return f"text/html; charset={self.site.encoding}"
        return "text/html"


def parse_article(src: str) -> tuple[str, list[tuple[str, str]]]:
    """(title, blocks): blocks are ("h2", text) or ("p", text), ruby markup kept."""
    title, blocks = "", []
    for line in (x.strip() for x in src.strip().splitlines()):
        if not line:
            continue
        if line.startswith("# "):
            title = line[2:]
        elif line.startswith("## "):
            blocks.append(("h2", line[3:]))
        else:
            blocks.append(("p", line))
    return title, blocks


def ruby_html(text: str) -> str:
    return _RUBY.sub(r"<ruby>\1<rp>(</rp><rt>\2</rt><rp>)</rp></ruby>", text)


def ruby_base(text: str) -> str:
    return _RUBY.sub(r"\1", text)


def _links(items: list[str], cls: str = "", href: str = "/") -> str:
    return "".join(f'<li{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}><a href="{href}{i}">{t}</a></li>'
                   for i, t in enumerate(items))


def _head(title: str, site: Site) -> str:
    meta = f'<meta charset="{site.encoding}">' if site.declare == "meta" and site.layout != "blog" else ""
    if site.declare == "meta" and site.layout == "blog":  # the old form, as old Japanese sites write it
        meta = f'<meta http-equiv="Content-Type" content="text/html; charset={site.encoding}">'
    return (f'<head>{meta}<title>{title} | {site.name}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="stylesheet" href="/css/style.css">'
            '<style>.ad{border:1px solid #ccc}.cookie{position:fixed;bottom:0}</style>'
            '<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}'
            'gtag("js",new Date());gtag("config","G-DEMO123");</script>'
            f'<script type="application/ld+json">{{"@type":"NewsArticle","headline":"{title}"}}</script></head>')


def _cookie(c: dict) -> str:
    return (f'<div class="cookie-banner" id="cookie-consent"><p>{c["cookie"]}</p>'
            f'<button>{c["cookie_btn"][0]}</button><button>{c["cookie_btn"][1]}</button></div>')


def _article_body(blocks: list[tuple[str, str]], heading: str = "h2", edit: str = "") -> str:
    out = []
    for kind, text in blocks:
        if kind == "h2":
            tail = f'<span class="mw-editsection">[<a href="?action=edit">{edit}</a>]</span>' if edit else ""
            out.append(f"<{heading}>{ruby_html(text)}{tail}</{heading}>")
        else:
            out.append(f"<p>{ruby_html(text)}</p>")
    return "\n".join(out)


def _news(site: Site, title: str, blocks, others: list[str], rng: random.Random) -> str:
    c = CHROME[site.lang]
    body = _article_body(blocks)
    mid = len(body) // 2
    cut = body.find("</p>", mid) + 4 if body.find("</p>", mid) > 0 else len(body)
    ad = f'<div class="ad ad-inarticle"><span>PR</span><a href="https://ads.example/c?id=1">{c["ads"][0]}</a></div>'
    return f"""<!DOCTYPE html><html lang="{site.lang}">{_head(title, site)}<body>
<header class="site-header"><div class="logo"><a href="/">{site.name}</a></div>
<form class="search"><input type="text" placeholder="{c['search']}"><button>Q</button></form>
<nav class="global-nav"><ul>{_links(c['nav'])}</ul></nav></header>
<div class="breadcrumb"><a href="/">{c['crumb'][0]}</a> &gt; <a href="/life">{c['crumb'][1]}</a> &gt; <span>{title}</span></div>
<main><article class="article">
<h1 class="article-title">{ruby_html(title)}</h1>
<div class="article-meta"><time datetime="2024-05-01">2024/05/01 10:00</time> {c['updated']} 2024/05/02</div>
<ul class="share">{_links(c['share'], 'share-btn')}</ul>
{body[:cut]}
{ad}
{body[cut:]}
</article>
<section class="related"><h2>{c['related']}</h2><ul>{_links(others[:4], 'related-item', '/article/')}</ul></section>
</main>
<aside class="sidebar"><div class="ad ad-side"><a href="https://ads.example/c?id=2">{c['ads'][1]}</a></div>
<section class="ranking"><h3>{c['ranking']}</h3><ol>{_links(others[4:9], 'rank', '/article/')}</ol></section></aside>
<footer class="site-footer"><ul>{_links(c['footer'], '', '/info/')}</ul><p class="copyright">{c['copyright'].format(name=site.name)}</p></footer>
{_cookie(c)}
<script src="/js/app.js"></script></body></html>"""


def _comments(site: Site, rng: random.Random) -> str:
    c = CHROME[site.lang]
    items = []
    for i, text in enumerate(rng.sample(COMMENTS[site.lang], 3)):
        if site.lang == "ja":
            ident = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz0123456789") for _ in range(8))
            who = (f"{i + 1} ：{rng.choice(BBS_NAMES)}：2024/05/0{i + 1}(水) 1{i}:2{i}:3{i}.{i}5 ID:{ident}")
            reply = f"&gt;&gt;{i}　" if i else ""
        else:
            who, reply = f"{rng.choice(['Sam', 'Priya', 'Tom', 'Lena'])} says: May {i + 1}, 2024 at 1{i}:0{i} pm", ""
        items.append(f'<li class="comment"><div class="comment-author">{who}</div><div class="comment-body">'
                     f'<p>{reply}{text}</p></div><a class="reply" href="#respond">Reply</a></li>')
    return (f'<div id="comments" class="comments-area"><h3>{c["comments"]} ({len(items)})</h3><ol class="comment-list">'
            f'{"".join(items)}</ol><div id="respond"><h3>{c["comment_form"]}</h3><form><label>{c["name"]}</label>'
            '<input type="text"><textarea></textarea><button>Submit</button></form></div></div>')


def _blog(site: Site, title: str, blocks, others: list[str], rng: random.Random) -> str:
    c = CHROME[site.lang]
    aff = "".join(f'<a class="aff" href="https://aff.example/?to={i}" rel="nofollow sponsored">{t}</a>'
                  for i, t in enumerate(c["affiliate"]))
    months = [f"2024年{m}月" if site.lang == "ja" else f"{m}/2024" for m in range(5, 0, -1)]
    return f"""<html>{_head(title, site)}<body bgcolor="#ffffff">
<table width="960" align="center" cellpadding="0" cellspacing="0"><tr><td colspan="2" class="hd">
<a href="/"><img src="/img/logo.gif" alt="{site.name}"></a> <font size="2">{site.name}</font></td></tr>
<tr><td width="700" valign="top" class="main">
<div class="entry"><div class="entry-date">2024.05.01</div>
<h2 class="entry-title"><a href="/entry/1">{ruby_html(title)}</a></h2>
<div class="entry-body">{_article_body(blocks, 'h3')}</div>
<div class="aff-box"><img src="/img/item.jpg" alt=""><p>{c['ads'][2]}</p>{aff}</div>
<div class="entry-footer">{c['categories']}: {c['crumb'][1]} | <a href="#comments">{c['comments']}(3)</a> | <a href="/tb">TrackBack(0)</a></div>
</div>
{_comments(site, rng)}
<div class="pager"><a href="/entry/0">&laquo; {c['prev']}</a> | <a href="/entry/2">{c['next']} &raquo;</a></div>
</td><td width="260" valign="top" class="side">
<div class="side-box"><h4>{c['archives']}</h4><ul>{_links(months, '', '/archive/')}</ul></div>
<div class="side-box"><h4>{c['categories']}</h4><ul>{_links(c['nav'][6:], '', '/cat/')}</ul></div>
<div class="side-box"><h4>{c['related']}</h4><ul>{_links(others[:5], '', '/entry/')}</ul></div>
</td></tr>
<tr><td colspan="2" class="ft"><center>{c['copyright'].format(name=site.name)}<br>{' | '.join(c['footer'][:4])}</center></td></tr>
</table></body></html>"""


def _wiki(site: Site, title: str, blocks, others: list[str], rng: random.Random) -> str:
    c = CHROME[site.lang]
    heads = [t for k, t in blocks if k == "h2"]
    toc = "".join(f'<li><a href="#s{i}"><span class="tocnumber">{i + 1}</span> {ruby_base(h)}</a></li>'
                  for i, h in enumerate(heads))
    navbox = " ・ ".join(others[:6]) if site.lang == "ja" else " · ".join(others[:6])
    return f"""<!DOCTYPE html><html lang="{site.lang}" class="client-nojs">{_head(title, site)}<body class="mediawiki">
<div id="mw-head"><div id="p-personal"><ul><li>Log in</li><li>Create account</li></ul></div>
<div id="left-navigation"><a href="#">Article</a> <a href="#">Talk</a></div>
<div id="right-navigation"><a href="#">Read</a> <a href="#">{c['edit']}</a> <a href="#">View history</a></div></div>
<div id="mw-panel"><div class="portal"><ul>{_links(c['nav'][:6], 'nav', '/wiki/')}</ul></div></div>
<div id="content" class="mw-body"><h1 id="firstHeading" class="firstHeading">{ruby_html(title)}</h1>
<div id="siteSub">From {site.name}</div>
<div id="mw-content-text" class="mw-body-content"><div class="mw-parser-output">
<div id="toc" class="toc"><div class="toctitle"><h2>{c['toc']}</h2></div><ul>{toc}</ul></div>
{_article_body(blocks, 'h2', c['edit'])}
<div class="navbox"><div class="navbox-title">{c['related']}</div><div class="navbox-list">{navbox}</div></div>
</div></div>
<div id="catlinks" class="catlinks">{c['categories_label']}: <a href="/cat/1">{c['crumb'][1]}</a> | <a href="/cat/2">{c['nav'][8]}</a></div></div>
<div id="footer"><ul id="footer-info">{''.join(f'<li>{x}</li>' for x in c['wiki_footer'])}</ul>
<ul id="footer-places">{_links(c['footer'][:3], '', '/wiki/Project:')}</ul></div></body></html>"""


def _column(site: Site, title: str, blocks, others: list[str], rng: random.Random) -> str:
    c = CHROME[site.lang]
    paras = _article_body(blocks, "h3").replace("<p>", '<div class="txt">').replace("</p>", "</div>")
    product = (f'<div class="product-box"><div class="pb-name">{c["ads"][1]}</div>'
               + "".join(f'<div class="pb-btn"><a href="https://aff.example/{i}" rel="sponsored">{t}</a></div>'
                         for i, t in enumerate(c["affiliate"])) + "</div>")
    return f"""<html>{_head(title, site)}<body>
<div id="wrap"><div class="hdr"><div class="hdr-logo"><a href="/">{site.name}</a></div>
<div class="hdr-menu">{' '.join(f'<a href="/c/{i}">{t}</a>' for i, t in enumerate(c['nav'][:8]))}</div></div>
<div class="pankuzu"><a href="/">{c['crumb'][0]}</a> › {title}</div>
<div class="cnt"><div class="mainBox">
<div class="ttl">{ruby_html(title)}</div>
<div class="date">2024.05.01</div>
<div class="sns">{' '.join(f'<a class="sns-btn" href="#">{s}</a>' for s in c['share'])}</div>
{paras}
{product}
<div class="authorBox"><img src="/img/author.png" alt=""><div class="authorTxt">{c['author']}</div></div>
<div class="sns">{' '.join(f'<a class="sns-btn" href="#">{s}</a>' for s in c['share'])}</div>
<div class="pager">{' '.join(f'<a href="?p={i}">{p}</a>' for i, p in enumerate(c['pages']))}</div>
<div class="osusume"><div class="osusume-ttl">{c['related']}</div>{''.join(f'<div class="osusume-item"><a href="/a/{i}">{t}</a></div>' for i, t in enumerate(others[:4]))}</div>
</div><div class="subBox"><div class="mailmag"><div>{c['newsletter']}</div><input type="email"><a class="btn">{c['subscribe']}</a></div>
<div class="ad"><a href="https://ads.example/c?id=3">{c['ads'][0]}</a></div></div></div>
<div class="ftr">{' | '.join(f'<a href="/p/{i}">{t}</a>' for i, t in enumerate(c['footer']))}<div class="copy">{c['copyright'].format(name=site.name)}</div></div></div>
{_cookie(c)}</body></html>"""


LAYOUTS = {"news": _news, "blog": _blog, "wiki": _wiki, "column": _column}


def _slug(title: str, i: int) -> str:
    return f"{i:03d}-{hashlib.sha1(title.encode()).hexdigest()[:8]}"


def labelled_pages(seed: int = 0) -> list[Page]:
    """The 32 labelled pages (see the module docstring), deterministic for a seed."""
    rng = random.Random(seed)
    pages = []
    for lang, articles in (("ja", ARTICLES_JA), ("en", ARTICLES_EN)):
        sites = [s for s in SITES if s.lang == lang]
        titles = [ruby_base(parse_article(a)[0]) for a in articles]
        for i, src in enumerate(articles):
            site = sites[i % len(sites)]
            title, blocks = parse_article(src)
            others = [t for t in titles if t != ruby_base(title)]
            rng.shuffle(others)
            html = LAYOUTS[site.layout](site, title, blocks, others, rng)
            label = "\n".join([ruby_base(title)] + [ruby_base(t) for _, t in blocks])
            url = f"https://{site.host}/{'articles' if site.layout != 'wiki' else 'wiki'}/{_slug(title, i)}.html"
            pages.append(Page(url, site, html, label, ruby_base(title)))
    return pages


def write_labelled_pages(out_dir: str | Path, seed: int = 0) -> Path:
    """Pages as files (`pages/NNN.html`, in each page's own encoding) and `labels.jsonl`."""
    out = Path(out_dir)
    (out / "pages").mkdir(parents=True, exist_ok=True)
    labels = []
    for i, p in enumerate(labelled_pages(seed)):
        name = f"{i:03d}-{p.lang}-{p.site.layout}.html"
        (out / "pages" / name).write_bytes(p.body())
        labels.append({"file": name, "url": p.url, "lang": p.lang, "layout": p.site.layout,
                       "encoding": p.site.encoding, "declared": p.site.declare, "label": p.label})
    write_jsonl(out / "labels.jsonl", labels)
    return out


# ---- the synthetic crawl (recipes/curate.yaml's web example) ---------------------------------
BBS_THREAD_POSTS = [
    "スレ立て乙", "&gt;&gt;1 乙です", "これマジ？ソースはよ", "&gt;&gt;3 公式発表あるぞ", "ワロタｗｗｗ",
    "&gt;&gt;5 草", "今北産業", "&gt;&gt;7 新作 発表 延期", "まあ待て、落ち着け", "&gt;&gt;2 それな",
    "age", "さげ忘れすまん", "&gt;&gt;10 何言ってんだこいつ",
]
AFFILIATE_JA = ["★今だけ限定★ 人気のサプリが初回980円！", "▼詳しくはこちら▼", "楽天市場で詳細を見る",
                "Amazonで詳細を見る", "※アフィリエイト広告を利用しています", "今すぐ購入する",
                "公式サイトで最安値をチェック", "【PR】売れ筋ランキング第1位"]
NG_PAGE = ("この掲示板では出会い系の無料登録を案内しています。今すぐ登録して、近所の人と出会おう。"
           "登録は無料で、面倒な手続きもありません。")
DENIED_HOST = "spam-farm.example"


def _bbs_thread(i: int, rng: random.Random) -> str:
    posts = []
    for n, text in enumerate(BBS_THREAD_POSTS, start=1):
        ident = "".join(rng.choice("ABCDEFGHJKabcdefgh0123456789+/") for _ in range(9))
        posts.append(f"<dt>{n} ：{rng.choice(BBS_NAMES)}：2024/0{1 + i % 9}/1{n % 10}(月) 0{n % 10}:1{n % 6}:22.{n:02d} "
                     f"ID:{ident}</dt><dd>{text}</dd>")
    return (f'<html><head><meta charset="utf-8"><title>【速報】新作ゲーム発表スレ Part{i}</title></head><body>'
            f'<h1>【速報】新作ゲーム発表スレ Part{i}</h1><dl class="thread">{"".join(posts)}</dl>'
            '<p>書き込み欄</p><form><input name="FROM"><textarea name="MESSAGE"></textarea>'
            '<input type="submit" value="書き込む"></form></body></html>')


def _affiliate_page(i: int) -> str:
    lines = "".join(f"<p>{x}</p>" for x in AFFILIATE_JA)
    return (f'<html><head><meta charset="utf-8"><title>人気サプリ比較{i}</title></head><body><article>'
            f"<h1>人気サプリ比較ランキング{i}</h1><p>今売れているサプリメントを比較しました。</p>{lines}{lines}"
            "</article></body></html>")


def _simple_page(title: str, text: str, lang: str = "ja") -> str:
    paras = "".join(f"<p>{p}</p>" for p in text.split("\n"))
    return (f'<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head><body>'
            f"<article><h1>{title}</h1>{paras}</article></body></html>")


# evaluation items planted in study-notes pages (the decontamination step's targets)
PLANTED = [("sycophancy-v1", "syc-en-01", "belief_prompt"), ("safety-v1", "harm-ja-03", "prompt")]


def planted_items() -> list[tuple[str, str]]:
    """(benchmark#item, text) of the evaluation items the crawl plants."""
    from ..eval.sets import EVAL_SETS

    out = []
    for bench, item, key in PLANTED:
        for line in (EVAL_SETS / f"{bench}.jsonl").read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec["id"] == item:
                out.append((f"{bench}#{item}", rec[key]))
    return out


def _plant_en(text: str) -> tuple[str, str]:
    return "Study notes: quiz practice", (
        "I keep a notebook of the practice questions from our evening class, copied word for word so that I "
        "can go through them again before the exam.\n"
        f"Today the teacher read out this one: {text}\n"
        "Most of the class answered quickly, but a few of us had to think about it for a while, which is a "
        "good sign that I should review the chapter on world capitals again this weekend.")


def _plant_ja(text: str) -> tuple[str, str]:
    return "勉強ノート", (
        "今日は倫理の授業で、AIが答えてはいけない質問の例をいくつか習った。先生が黒板に書いた例をそのまま写しておく。\n"
        f"例:「{text}」\n"
        "このような質問には、理由を説明したうえで丁寧に断るのが正しい対応だと先生は話していた。"
        "来週は、断り方の良い例と悪い例を班ごとに話し合う予定になっている。")


_PLANT_PAGES = (_plant_en, _plant_ja)


def sample_crawl(seed: int = 0, plant: bool = True) -> list[dict]:
    """The records of the synthetic crawl: dicts with url, kind, html bytes, content type,
    expected action and (labelled pages) the main text. `plant`: add pages holding evaluation
    items (`PLANTED`)."""
    rng = random.Random(seed)
    recs = []
    for p in labelled_pages(seed):
        recs.append({"url": p.url, "kind": "article", "expect": "keep", "body": p.body(),
                     "content_type": p.content_type(), "label": p.label})
    for i in range(3):
        recs.append({"url": f"https://bbs.example/test/read.cgi/game/{1700000000 + i}/", "kind": "bbs_thread",
                     "expect": "bbs_comments", "body": _bbs_thread(i, rng).encode(), "content_type": "text/html"})
        recs.append({"url": f"https://supple-hikaku.example/ranking/{i}", "kind": "affiliate",
                     "expect": "ads", "body": _affiliate_page(i).encode(), "content_type": "text/html"})
    recs.append({"url": "https://deai-board.example/top", "kind": "ng_words", "expect": "ng_words",
                 "body": _simple_page("無料登録のご案内", NG_PAGE).encode(), "content_type": "text/html"})
    denied = labelled_pages(seed)[0]
    recs.append({"url": f"https://{DENIED_HOST}/copy/1.html", "kind": "denied_domain", "expect": "domain",
                 "body": denied.body(), "content_type": "text/html"})
    for i, (item, text) in enumerate(planted_items() if plant else []):
        recs.append({"url": f"https://study-notes.example/2024/05/0{i + 1}", "kind": "contaminated",
                     "expect": "decontaminate", "item": item, "content_type": "text/html",
                     "body": _simple_page(*_PLANT_PAGES[i % 2](text), lang="en" if i % 2 == 0 else "ja").encode()})
    recs.append({"url": "https://broken-charset.example/", "kind": "undecidable_charset", "expect": "read",
                 "body": bytes(rng.randrange(128, 256) for _ in range(3000)), "content_type": "text/html"})
    recs.append({"url": "https://www.hinode-news.example/img/logo.png", "kind": "image", "expect": "read",
                 "body": b"\x89PNG\r\n\x1a\n" + bytes(200), "content_type": "image/png"})
    return recs


def _record_id(url: str, kind: str, seed: int) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{seed}:{kind}:{url}')}>"


def write_web_sample(out_dir: str | Path, seed: int = 0, plant: bool = True) -> Path:
    """`crawl.warc.gz` (request + response + metadata per page, as Common Crawl writes them) and
    `labels.jsonl`; returns the WARC path. Deterministic (record ids derive from the URL and the
    seed) and idempotent: a folder holding the same parameters (`manifest.json`, written last)
    is left as it is, so a rerun of curation can resume on it."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    out = Path(out_dir)
    path = out / "crawl.warc.gz"
    manifest = {"seed": seed, "plant": plant, "version": 1}
    if (out / "manifest.json").exists() and path.exists():
        with contextlib.suppress(ValueError):
            if json.loads((out / "manifest.json").read_text(encoding="utf-8")) == manifest:
                return path
    out.mkdir(parents=True, exist_ok=True)
    recs = sample_crawl(seed, plant)
    with atomic_write(path, "wb", encoding=None) as f:
        w = WARCWriter(f, gzip=True)
        w.write_record(w.create_warcinfo_record(path.name, {"software": "llm-recipe demo crawl"}))
        for i, r in enumerate(recs):
            date = f"2024-05-{1 + i % 28:02d}T10:{i % 60:02d}:00Z"
            req = StatusAndHeaders("GET / HTTP/1.1", [("Host", r["url"].split("/")[2])], is_http_request=True)
            w.write_record(w.create_warc_record(r["url"], "request", http_headers=req, warc_headers_dict={
                "WARC-Date": date, "WARC-Record-ID": _record_id(r["url"], "request", seed)}))
            headers = StatusAndHeaders("200 OK", [("Content-Type", r["content_type"]),
                                                  ("Content-Length", str(len(r["body"])))], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(r["url"], "response", payload=io.BytesIO(r["body"]),
                                                http_headers=headers, warc_headers_dict={
                                                    "WARC-Date": date,
                                                    "WARC-Record-ID": _record_id(r["url"], "response", seed)}))
            w.write_record(w.create_warc_record(r["url"], "metadata", payload=io.BytesIO(b"fetchTimeMs: 120\n"),
                                                warc_content_type="application/warc-fields", warc_headers_dict={
                                                    "WARC-Date": date,
                                                    "WARC-Record-ID": _record_id(r["url"], "metadata", seed)}))
    write_jsonl(out / "labels.jsonl", [{k: v for k, v in r.items() if k != "body"} for r in recs])
    write_json(out / "manifest.json", manifest)
    return path
