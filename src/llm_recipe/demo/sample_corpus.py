"""Deterministic generator of the bundled sample corpus (mixed Japanese / English).

Five sources, like a real pretraining mix: web (blog posts, reviews), wiki (encyclopedic
articles), books (short stories), code (Python with comments in both languages) and qa
(instruction-formatted question/answer pairs, so the model has seen the prompt templates it
will be fine-tuned on). Facts come from `llm_recipe.demo.world`, so they are consistent
across documents and learnable. Same seed -> byte-identical output.

Documents follow the corpus schema `{id, text, source, url, meta}` and are written as one
JSONL shard per source.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from ..files import atomic_write, read_json, write_json
from . import world as W

SOURCES = ("web", "wiki", "books", "code", "qa")


def _country_article(r: random.Random, lang: str) -> str:
    c = r.choice(W.COUNTRIES)
    others = [o for o in W.COUNTRIES if o.continent_en == c.continent_en and o is not c]
    if lang == "ja":
        parts = [
            f"{c.ja}は{c.continent_ja}にある国です。首都は{c.capital_ja}です。",
            f"{c.ja}の主な言語は{c.language_ja}です。",
            f"{c.capital_ja}は{c.ja}で最も重要な都市の一つで、政治と文化の中心です。",
        ]
        if others:
            o = r.choice(others)
            parts.append(f"同じ{c.continent_ja}の国には{o.ja}があり、その首都は{o.capital_ja}です。")
        parts.append(r.choice([
            f"多くの旅行者が毎年{c.capital_ja}を訪れます。",
            f"{c.ja}の料理や歴史について学ぶ人も増えています。",
            f"{c.ja}では{c.language_ja}のほかに英語を学ぶ人も多いです。",
        ]))
        return "\n".join(parts)
    parts = [
        f"{c.en} is a country in {c.continent_en}. Its capital is {c.capital_en}.",
        f"The main language of {c.en} is {c.language_en}.",
        f"{c.capital_en} is one of the most important cities in {c.en} and a center of politics and culture.",
    ]
    if others:
        o = r.choice(others)
        parts.append(f"Another country in {c.continent_en} is {o.en}, whose capital is {o.capital_en}.")
    parts.append(r.choice([
        f"Many travelers visit {c.capital_en} every year.",
        f"More and more people study the food and history of {c.en}.",
        f"Besides {c.language_en}, many people in {c.en} also learn other languages.",
    ]))
    return "\n".join(parts)


def _city_article(r: random.Random, lang: str) -> str:
    c = r.choice(W.JAPANESE_CITIES)
    if lang == "ja":
        return "\n".join([
            f"{c.ja}は日本の{c.region_ja}地方にある都市です。",
            f"{c.ja}は{c.known_for_ja}で知られています。",
            r.choice([f"{c.ja}には毎年たくさんの観光客が来ます。", f"{c.ja}の人々は地元の祭りを大切にしています。"]),
        ])
    return "\n".join([
        f"{c.en} is a city in Japan, in the {c.region_ja} region.",
        f"{c.en} is known for {c.known_for_en}.",
        r.choice([f"Many tourists come to {c.en} every year.", f"People in {c.en} value their local festivals."]),
    ])


def _animal_article(r: random.Random, lang: str) -> str:
    a = r.choice(W.ANIMALS)
    if lang == "ja":
        return "\n".join([
            f"{a.ja}は{a.kind_ja}の動物です。",
            f"{a.ja}は主に{a.eats_ja}を食べ、{a.lives_ja}に住んでいます。",
            r.choice([f"{a.ja}は子どもたちに人気があります。", f"{a.ja}の生活を観察すると多くのことがわかります。"]),
        ])
    return "\n".join([
        f"The {a.en} is a {a.kind_en}.",
        f"A {a.en} mostly eats {a.eats_en} and lives in {a.lives_en}.",
        r.choice([f"The {a.en} is popular with children.", f"Watching how a {a.en} lives teaches us a lot."]),
    ])


def gen_wiki(r: random.Random, lang: str) -> str:
    n = r.randint(2, 4)
    makers = [_country_article, _city_article, _animal_article]
    return "\n\n".join(r.choice(makers)(r, lang) for _ in range(n))


def gen_web(r: random.Random, lang: str) -> str:
    paras = []
    for _ in range(r.randint(2, 4)):
        i = r.randrange(len(W.FOODS_EN))
        w = r.randrange(len(W.WEATHER_EN))
        city = r.choice(W.JAPANESE_CITIES)
        stars = r.randint(1, 5)
        if lang == "ja":
            paras.append(r.choice([
                f"今日は{city.ja}に行きました。天気は{W.WEATHER_JA[w]}でした。お昼に{W.FOODS_JA[i]}を食べました。とてもおいしかったです。",
                f"{W.FOODS_JA[i]}のお店のレビューです。評価は星{stars}つです。店員さんは親切で、値段も手ごろでした。また行きたいと思います。",
                f"週末は家で{W.FOODS_JA[i]}を作りました。材料は近くのスーパーで買いました。作り方は簡単なので、ぜひ試してみてください。",
                f"{city.ja}は{city.known_for_ja}で有名です。旅行の前に天気予報を確認すると安心です。",
            ]))
        else:
            paras.append(r.choice([
                f"Today I went to {city.en}. The weather was {W.WEATHER_EN[w]}. I had {W.FOODS_EN[i]} for lunch. It was delicious.",
                f"This is a review of a shop that sells {W.FOODS_EN[i]}. I give it {stars} out of 5 stars. The staff were kind and the prices were fair. I would go again.",
                f"On the weekend I made {W.FOODS_EN[i]} at home. I bought everything at the supermarket nearby. It is easy, so please try it.",
                f"{city.en} is famous for {city.known_for_en}. Check the weather forecast before you travel.",
            ]))
    return "\n\n".join(paras)


def gen_books(r: random.Random, lang: str) -> str:
    k = r.randrange(len(W.NAMES_EN))
    o = r.randrange(len(W.OBJECTS_EN))
    a = r.choice(W.ANIMALS)
    city = r.choice(W.JAPANESE_CITIES)
    if lang == "ja":
        name, obj = W.NAMES_JA[k], W.OBJECTS_JA[o]
        lines = [
            f"昔々、{city.ja}の近くの小さな村に{name}という子どもが住んでいました。",
            f"ある日、{name}は道で{obj}を見つけました。",
            f"そのとき、一匹の{a.ja}が現れて、「それはとても大切なものだよ」と言いました。",
            f"{name}は{a.ja}と一緒に持ち主を探す旅に出ました。",
            r.choice([
                f"長い旅のあと、{name}は持ち主を見つけ、村に帰りました。村の人々は{name}をほめました。",
                f"夕方になっても持ち主は見つかりませんでしたが、{name}は新しい友だちができたことを喜びました。",
            ]),
        ]
        return "".join(lines)
    name, obj = W.NAMES_EN[k], W.OBJECTS_EN[o]
    lines = [
        f"Once upon a time, a child named {name} lived in a small village near {city.en}.",
        f"One day, {name} found {obj} on the road.",
        f'Just then, a {a.en} appeared and said, "That is something very important."',
        f"{name} and the {a.en} set out together to find its owner.",
        r.choice([
            f"After a long journey, {name} found the owner and went home. Everyone in the village praised {name}.",
            f"By evening they had not found the owner, but {name} was happy to have made a new friend.",
        ]),
    ]
    return " ".join(lines)


_CODE_TEMPLATES = [
    ("add", "a, b", "return {a} + {b}", "Return the sum of two numbers.", "二つの数の和を返す。"),
    ("multiply", "a, b", "return {a} * {b}", "Return the product of two numbers.", "二つの数の積を返す。"),
    ("square", "x", "return {x} * {x}", "Return x squared.", "x の二乗を返す。"),
    ("is_even", "n", "return {n} % 2 == 0", "Return True if n is even.", "n が偶数なら True を返す。"),
    ("reverse", "s", "return {s}[::-1]", "Return the string reversed.", "文字列を逆順にして返す。"),
    ("count_words", "text", "return len({text}.split())", "Count the words in a text.", "テキストの単語数を数える。"),
    ("maximum", "items", "return max({items})", "Return the largest item.", "最大の要素を返す。"),
]


def gen_code(r: random.Random, lang: str) -> str:
    funcs = []
    for _ in range(r.randint(2, 4)):
        name, args, body, doc_en, doc_ja = r.choice(_CODE_TEMPLATES)
        names = [a.strip() for a in args.split(",")]
        rename = {n: r.choice([n, n + "_value", n[0]]) for n in names}
        sig = ", ".join(rename[n] for n in names)
        comment = f"# {doc_ja}" if lang == "ja" else f"# {doc_en}"
        funcs.append(
            f"{comment}\ndef {name}({sig}):\n    \"\"\"{doc_en}\"\"\"\n    {body.format(**rename)}\n"
        )
    call = r.choice(["print(add(2, 3))", "print(reverse('abc'))", "print(square(4))", "print(is_even(7))"])
    return "\n\n".join(funcs) + f"\n\nif __name__ == \"__main__\":\n    {call}\n"


def gen_qa(r: random.Random, lang: str) -> str:
    """Instruction-formatted pairs: the same Alpaca templates SFT uses later."""
    blocks = []
    for _ in range(r.randint(2, 4)):
        c = r.choice(W.COUNTRIES)
        a = r.choice(W.ANIMALS)
        if lang == "ja":
            q, ans = r.choice([
                (f"{c.ja}の首都はどこですか？", f"{c.ja}の首都は{c.capital_ja}です。"),
                (f"{c.ja}ではどの言語が話されていますか？", f"{c.ja}の主な言語は{c.language_ja}です。"),
                (f"{a.ja}は何を食べますか？", f"{a.ja}は主に{a.eats_ja}を食べます。"),
                (f"{c.ja}はどの大陸にありますか？", f"{c.ja}は{c.continent_ja}にあります。"),
            ])
            blocks.append(f"### 指示:\n{q}\n\n### 応答:\n{ans}")
        else:
            q, ans = r.choice([
                (f"What is the capital of {c.en}?", f"The capital of {c.en} is {c.capital_en}."),
                (f"What language is spoken in {c.en}?", f"The main language of {c.en} is {c.language_en}."),
                (f"What does a {a.en} eat?", f"A {a.en} mostly eats {a.eats_en}."),
                (f"Which continent is {c.en} in?", f"{c.en} is in {c.continent_en}."),
            ])
            blocks.append(f"### Instruction:\n{q}\n\n### Response:\n{ans}")
    return "\n\n".join(blocks)


GENERATORS: dict[str, Callable[[random.Random, str], str]] = {
    "web": gen_web,
    "wiki": gen_wiki,
    "books": gen_books,
    "code": gen_code,
    "qa": gen_qa,
}
_DOMAINS = {
    "web": "blog.example.jp",
    "wiki": "wiki.example.org",
    "books": "books.example.net",
    "code": "code.example.com",
    "qa": "qa.example.jp",
}


def iter_sample_docs(docs_per_source: int = 1000, seed: int = 0) -> Iterator[dict]:
    """Yield documents, source by source. Half Japanese, half English (code: comments vary)."""
    for source in SOURCES:
        # One RNG per source so adding a source never changes the others.
        r = random.Random(f"{seed}-{source}")
        for i in range(docs_per_source):
            lang = "ja" if r.random() < 0.5 else "en"
            text = GENERATORS[source](r, lang)
            yield {
                "id": f"{source}-{i:06d}",
                "text": text,
                "source": source,
                "url": f"https://{_DOMAINS[source]}/{lang}/{i}",
                "meta": {"lang": lang},
            }


def _cache_key(docs_per_source: int, seed: int) -> str:
    # Includes this file's bytes so editing a template invalidates old caches.
    h = hashlib.sha256(Path(__file__).read_bytes() + Path(W.__file__).read_bytes())
    h.update(f"{docs_per_source}-{seed}".encode())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("LLM_RECIPE_CACHE", Path.home() / ".cache" / "llm-recipe"))


def generate_sample_corpus(
    out_dir: str | os.PathLike | None = None, docs_per_source: int = 1000, seed: int = 0
) -> Path:
    """Write `{source}.jsonl` shards to `out_dir` (default: a content-keyed cache) and return it.

    Idempotent: when the directory already holds a complete corpus for these parameters
    (recorded in `manifest.json`, written last), nothing is regenerated.
    """
    key = _cache_key(docs_per_source, seed)
    out = Path(out_dir) if out_dir is not None else default_cache_dir() / "sample_corpus" / key
    manifest = out / "manifest.json"
    if manifest.exists():
        try:
            if read_json(manifest)["key"] == key:
                return out
        except (ValueError, KeyError):
            pass  # corrupt manifest: regenerate below
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    by_source: dict[str, list[dict]] = {s: [] for s in SOURCES}
    for doc in iter_sample_docs(docs_per_source, seed):
        by_source[doc["source"]].append(doc)
    for source, docs in by_source.items():
        path = out / f"{source}.jsonl"
        with atomic_write(path) as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
        files[path.name] = {"docs": len(docs), "bytes": path.stat().st_size}
    write_json(manifest, {"key": key, "docs_per_source": docs_per_source, "seed": seed, "files": files})
    return out


def sample_corpus_files(corpus_dir: str | os.PathLike) -> list[Path]:
    return sorted(Path(corpus_dir).glob("*.jsonl"))
