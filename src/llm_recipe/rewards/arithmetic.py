"""A verifiable task: short arithmetic word problems in Japanese and English, with their answers.

    arithmetic_problems(n, seed, ...)   n problems {"id", "prompt", "answer", "lang", "op", "level"}, a pure
                                        function of the seed: each problem is one operation (+, -, x, /,
                                        or two steps) on small whole numbers, told as a story about a
                                        person and things they count, in the language drawn for it
    split_problems(problems, n_test)    (train, test) with no problem text in both

The bundled set (`write_bundled`, `resources/tasks/arith-v1/{train,test}.jsonl`) is generated once
by this module and versioned: a change to the generator is a new version (arith-v2), never an edit
of v1, so results on v1 stay comparable. Each prompt asks for the final answer on its own line
("Answer: 12" / 「答え：12」), the form `format.answer_last_line` checks and `math_answer` reads.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NAMES = {"en": ["Ken", "Mary", "Tom", "Aya", "Sam", "Lucy", "Ben", "Emma", "Yuki", "Jack"],
         "ja": ["ケン", "マリ", "タロウ", "アヤ", "ユキ", "ハナ", "ソウタ", "ミサキ", "リク", "サクラ"]}
# (English plural, Japanese noun, Japanese counter)
ITEMS = [("apples", "りんご", "個"), ("pencils", "えんぴつ", "本"), ("cards", "カード", "枚"),
         ("candies", "あめ", "個"), ("books", "本", "冊"), ("stickers", "シール", "枚"),
         ("marbles", "ビー玉", "個"), ("flowers", "花", "本"), ("cookies", "クッキー", "枚"),
         ("coins", "コイン", "枚")]
INSTRUCTION = {"en": "Give the final answer on the last line as \"Answer: <number>\".",
               "ja": "最後の行に「答え：<数>」の形で答えを書いてください。"}


@dataclass(frozen=True)
class Story:
    lang: str
    name: str
    friend: str
    item: tuple[str, str, str]


def _add(s: Story, a: int, b: int) -> tuple[str, int]:
    en, ja, c = s.item
    if s.lang == "en":
        return f"{s.name} has {a} {en}. {s.friend} gives {s.name} {b} more {en}. How many {en} does {s.name} have now?", a + b
    return f"{s.name}さんは{ja}を{a}{c}持っています。{s.friend}さんから{b}{c}もらいました。{ja}は全部で何{c}になりましたか？", a + b


def _sub(s: Story, a: int, b: int) -> tuple[str, int]:
    en, ja, c = s.item
    a, b = max(a, b), min(a, b)
    if s.lang == "en":
        return f"{s.name} has {a} {en} and gives {b} of them to {s.friend}. How many {en} does {s.name} have left?", a - b
    return f"{s.name}さんは{ja}を{a}{c}持っています。{s.friend}さんに{b}{c}あげました。{ja}は何{c}残っていますか？", a - b


def _mul(s: Story, a: int, b: int) -> tuple[str, int]:
    en, ja, c = s.item
    a, b = a % 9 + 2, b % 9 + 2
    if s.lang == "en":
        return f"{s.name} has {a} bags with {b} {en} in each bag. How many {en} does {s.name} have in total?", a * b
    return f"{s.name}さんは{ja}が{b}{c}ずつ入ったふくろを{a}つ持っています。{ja}は全部で何{c}ありますか？", a * b


def _div(s: Story, a: int, b: int) -> tuple[str, int]:
    en, ja, c = s.item
    a, b = a % 9 + 2, b % 4 + 2
    if s.lang == "en":
        return f"{s.name} shares {a * b} {en} equally among {b} friends. How many {en} does each friend get?", a
    return f"{s.name}さんは{ja}{a * b}{c}を{b}人の友だちに同じ数ずつ分けます。1人何{c}になりますか？", a


def _two_step(s: Story, a: int, b: int) -> tuple[str, int]:
    en, ja, c = s.item
    k = (a + b) % 5 + 1
    if s.lang == "en":
        return (f"{s.name} has {a} {en}, gets {b} more from {s.friend} and then gives {k} away. "
                f"How many {en} does {s.name} have now?"), a + b - k
    return (f"{s.name}さんは{ja}を{a}{c}持っていて、{s.friend}さんから{b}{c}もらい、そのあと{k}{c}を妹にあげました。"
            f"{ja}は何{c}ありますか？"), a + b - k


OPERATIONS: dict[str, Callable[[Story, int, int], tuple[str, int]]] = {
    "add": _add, "sub": _sub, "mul": _mul, "div": _div, "two_step": _two_step}


def arithmetic_problems(n: int, seed: int, *, max_number: int = 30, ops: tuple[str, ...] = tuple(OPERATIONS),
                        ja_share: float = 0.5) -> list[dict]:
    """`n` distinct problems (distinct prompt texts), a pure function of the arguments."""
    rng = random.Random(f"arith/{seed}")
    out, seen = [], set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n:
            raise ValueError(f"cannot make {n} distinct problems with max_number={max_number}, ops={ops}")
        lang = "ja" if rng.random() < ja_share else "en"
        name, friend = rng.sample(NAMES[lang], 2)
        story = Story(lang, name, friend, rng.choice(ITEMS))
        op = rng.choice(ops)
        text, answer = OPERATIONS[op](story, rng.randint(2, max_number), rng.randint(2, max_number))
        if text in seen:
            continue
        seen.add(text)
        pid = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        out.append({"id": pid, "prompt": f"{text}\n{INSTRUCTION[lang]}", "answer": str(answer), "lang": lang, "op": op})
    return out


def split_problems(problems: list[dict], n_test: int) -> tuple[list[dict], list[dict]]:
    """(train, test): the first `n_test` problems are the test split (the generator never repeats a text)."""
    test, train = problems[:n_test], problems[n_test:]
    assert not {p["prompt"] for p in test} & {p["prompt"] for p in train}
    return train, test


# Every bundled version and the arguments that made it (a new version, never an edited one).
VERSIONS = {"arith-v1": {"n_train": 2000, "n_test": 300, "seed": 0, "max_number": 10}}


def write_bundled(folder: str | Path, n_train: int, n_test: int, seed: int, **kw) -> tuple[Path, Path]:
    """Write `train.jsonl`, `test.jsonl` and `task.json` (its verifier and how it was made) into `folder`."""
    from ..files import write_json, write_jsonl

    train, test = split_problems(arithmetic_problems(n_train + n_test, seed, **kw), n_test)
    folder = Path(folder)
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "test.jsonl", test)
    write_json(folder / "task.json", {"verifier": "math_answer", "generator": "llm_recipe.rewards.arithmetic",
                                      "arguments": {"n_train": n_train, "n_test": n_test, "seed": seed, **kw}})
    return folder / "train.jsonl", folder / "test.jsonl"


if __name__ == "__main__":  # python -m llm_recipe.rewards.arithmetic: (re)write the bundled versions
    from .tasks import TASKS_DIR

    for name, args in VERSIONS.items():
        print(name, *write_bundled(TASKS_DIR / name, **args))
