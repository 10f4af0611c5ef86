"""Generated corpora with known near-duplicate structure, for dedup tests and benchmarks.

Words come from a generated vocabulary (random syllables for English-like text, random kana /
kanji runs for Japanese written without spaces) with Zipf-like frequencies, so documents look
like text to a shingler without copying any real text. A family is a base document plus
variants, each made by word-level edits (substitute / delete / insert) at its own rate, so the
Jaccard similarities inside a family spread over the whole [0, 1] range. Chain families edit
the previous variant instead of the base, which produces A~B~C chains with A !~ C.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

_CONS = "bcdfghjklmnprstvwz"
_VOW = "aeiou"
_HIRA = [chr(c) for c in range(0x3042, 0x3094)]
_KANJI = [chr(c) for c in range(0x4E00, 0x4E00 + 2000)]


def make_vocab(rng: random.Random, size: int, lang: str = "en") -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        if lang == "ja":
            n = rng.randint(1, 3)
            w = "".join(rng.choice(_KANJI) for _ in range(rng.randint(0, 2)))
            w += "".join(rng.choice(_HIRA) for _ in range(n))
        else:
            w = "".join(rng.choice(_CONS) + rng.choice(_VOW) for _ in range(rng.randint(1, 4)))
        words.add(w)
    return sorted(words)


@dataclass
class Vocab:
    words: list[str]
    lang: str
    cum_weights: list[float]  # cumulative: random.choices then skips an O(V) pass per call

    @classmethod
    def build(cls, rng: random.Random, size: int = 20000, lang: str = "en") -> Vocab:
        words = make_vocab(rng, size, lang)
        rng.shuffle(words)
        return cls(words, lang, list(itertools.accumulate(1.0 / (r + 1) ** 0.9 for r in range(len(words)))))

    def sample(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cum_weights, k=k)

    def sentences(self, rng: random.Random, n_words: int) -> list[list[str]]:
        out, left = [], n_words
        while left > 0:
            k = min(left, rng.randint(8, 16))
            out.append(self.sample(rng, k))
            left -= k
        return out

    def join(self, sentences: list[list[str]]) -> str:
        """Spaces and '. ' for English; no spaces and '。' for Japanese."""
        if self.lang == "ja":
            return "".join("".join(s) + "。" for s in sentences if s)
        return " ".join(" ".join(s) + "." for s in sentences if s)


def edit_words(rng: random.Random, words: list[str], rate: float, vocab: Vocab) -> list[str]:
    out: list[str] = []
    for w in words:
        if rng.random() >= rate:
            out.append(w)
            continue
        op = rng.random()
        if op < 0.5:
            out.append(vocab.sample(rng, 1)[0])  # substitute
        elif op < 0.75:
            continue  # delete
        else:
            out.extend([w, vocab.sample(rng, 1)[0]])  # insert after
    return out


@dataclass
class SyntheticCorpus:
    texts: list[str]
    family: list[int]  # family id per document (unique documents have their own family)


def near_duplicate_corpus(
    n_docs: int,
    seed: int = 0,
    lang: str = "en",
    dup_fraction: float = 0.5,
    family_size: tuple[int, int] = (2, 6),
    max_edit_rate: float = 0.3,
    chain_fraction: float = 0.2,
    words_per_doc: tuple[int, int] = (60, 140),
    vocab_size: int = 20000,
) -> SyntheticCorpus:
    """About `dup_fraction` of the documents belong to families of near duplicates.

    Documents are shuffled so that family members are not adjacent in the input.
    """
    rng = random.Random(f"{seed}-{lang}")
    vocab = Vocab.build(rng, vocab_size, lang)
    docs: list[tuple[str, int]] = []
    fam = 0
    while len(docs) < n_docs:
        base = vocab.sentences(rng, rng.randint(*words_per_doc))
        size = 1
        if rng.random() < dup_fraction:
            size = min(rng.randint(*family_size), n_docs - len(docs))
        chain = rng.random() < chain_fraction
        prev = base
        docs.append((vocab.join(base), fam))
        for _ in range(size - 1):
            src = prev if chain else base
            rate = rng.uniform(0.0, max_edit_rate if not chain else max_edit_rate / 3)
            prev = [edit_words(rng, sent, rate, vocab) for sent in src]
            docs.append((vocab.join(prev), fam))
        fam += 1
    rng.shuffle(docs)
    return SyntheticCorpus([t for t, _ in docs], [f for _, f in docs])


# ---- paraphrases: the same facts in different words ------------------------------------------
_JOBS = [("teacher", "教師"), ("doctor", "医者"), ("baker", "パン職人"), ("pilot", "パイロット"),
         ("farmer", "農家"), ("nurse", "看護師"), ("engineer", "エンジニア"), ("chef", "料理人"),
         ("lawyer", "弁護士"), ("painter", "画家"), ("librarian", "司書"), ("carpenter", "大工")]
_HOBBIES = [("fishing", "釣り"), ("hiking", "登山"), ("chess", "将棋"), ("gardening", "庭いじり"),
            ("singing", "歌うこと"), ("cycling", "サイクリング"), ("reading novels", "小説を読むこと"),
            ("baking bread", "パン作り"), ("photography", "写真"), ("swimming", "水泳")]
_PETS = [("cat", "猫"), ("dog", "犬"), ("rabbit", "うさぎ"), ("parrot", "オウム"), ("hamster", "ハムスター"),
         ("turtle", "亀"), ("goldfish", "金魚")]
_FOODS = [("curry", "カレー"), ("sushi", "寿司"), ("ramen", "ラーメン"), ("pizza", "ピザ"),
          ("tempura", "天ぷら"), ("pancakes", "パンケーキ"), ("dumplings", "餃子"), ("soba", "そば")]
_KATA = [chr(c) for c in range(0x30A2, 0x30F3)]

_TEMPLATES = {
    "en": {
        "city": ["{name} was born in {city}.", "The hometown of {name} is {city}.",
                 "{name} grew up in the town of {city}."],
        "job": ["{name} works as a {job}.", "By profession, {name} is a {job}.",
                "The job of {name} is being a {job}."],
        "hobby": ["In free time, {name} enjoys {hobby}.", "{name} loves {hobby} on weekends.",
                  "A favourite pastime of {name} is {hobby}."],
        "pet": ["{name} has a {pet} at home.", "At home, {name} keeps a pet {pet}.",
                "{name} lives together with a {pet}."],
        "age": ["{name} is {age} years old.", "The age of {name} is {age}.",
                "This year {name} turned {age}."],
        "food": ["The favourite food of {name} is {food}.", "{name} likes eating {food} more than anything.",
                 "Nothing beats {food} for {name}."],
    },
    "ja": {
        "city": ["{name}は{city}で生まれました。", "{name}の出身地は{city}です。", "{city}は{name}の故郷です。"],
        "job": ["{name}の仕事は{job}です。", "{name}は{job}として働いています。", "{name}は職業が{job}です。"],
        "hobby": ["{name}の趣味は{hobby}です。", "休みの日、{name}は{hobby}を楽しみます。",
                  "{name}は{hobby}が大好きです。"],
        "pet": ["{name}は家で{pet}を飼っています。", "{name}の家には{pet}がいます。",
                "{name}は{pet}と一緒に暮らしています。"],
        "age": ["{name}は{age}歳です。", "{name}の年齢は{age}歳です。", "今年で{name}は{age}歳になりました。"],
        "food": ["{name}の好きな食べ物は{food}です。", "{name}は{food}を食べるのが一番好きです。",
                 "{food}は{name}の大好物です。"],
    },
}


def _person(rng: random.Random, lang: str) -> dict[str, str]:
    k = 1 if lang == "ja" else 0
    if lang == "ja":
        name = "".join(rng.choice(_KATA) for _ in range(rng.randint(3, 4))) + "さん"
        city = "".join(rng.choice(_KANJI) for _ in range(2)) + "市"
    else:
        name = "".join(rng.choice(_CONS) + rng.choice(_VOW) for _ in range(rng.randint(3, 4))).title()
        city = "".join(rng.choice(_CONS) + rng.choice(_VOW) for _ in range(3)).title() + "ville"
    return {"name": name, "city": city, "job": rng.choice(_JOBS)[k], "hobby": rng.choice(_HOBBIES)[k],
            "pet": rng.choice(_PETS)[k], "age": str(rng.randint(18, 90)), "food": rng.choice(_FOODS)[k]}


def _describe(rng: random.Random, facts: dict[str, str], lang: str, variant: dict[str, int]) -> str:
    keys = list(_TEMPLATES[lang])
    rng.shuffle(keys)
    sents = [_TEMPLATES[lang][k][variant[k]].format(**facts) for k in keys]
    return ("" if lang == "ja" else " ").join(sents)


def paraphrase_corpus(n_pairs: int, n_single: int, seed: int = 0, lang: str = "en") -> SyntheticCorpus:
    """`n_pairs` pairs describing the same person in different wording and sentence order
    (family = the person), plus `n_single` descriptions of other people."""
    rng = random.Random(f"para-{seed}-{lang}")
    docs: list[tuple[str, int]] = []
    for fam in range(n_pairs + n_single):
        facts = _person(rng, lang)
        v1 = {k: rng.randrange(3) for k in _TEMPLATES[lang]}
        docs.append((_describe(rng, facts, lang, v1), fam))
        if fam < n_pairs:  # the paraphrase uses a different template for every fact
            v2 = {k: (v + rng.randint(1, 2)) % 3 for k, v in v1.items()}
            docs.append((_describe(rng, facts, lang, v2), fam))
    rng.shuffle(docs)
    return SyntheticCorpus([t for t, _ in docs], [f for _, f in docs])
