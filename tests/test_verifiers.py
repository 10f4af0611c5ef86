"""Built-in verifiers on tricky Japanese and English completions, including ones that must not match."""

from __future__ import annotations

from fractions import Fraction

import pytest

from llm_recipe.rewards.constraints import instruction_following, prompt_language
from llm_recipe.rewards.format import answer_last_line, regex_format, think_answer
from llm_recipe.rewards.length import overlong_penalty
from llm_recipe.rewards.math_answer import final_answer, math_answer
from llm_recipe.rewards.numbers import parse_number
from llm_recipe.rewards.text import text_language
from llm_recipe.rewards.verifiers import VERIFIER_NAMES, verifier


@pytest.mark.parametrize("text,value", [
    ("１２", 12), ("十二", 12), ("二十", 20), ("二十五個", 25), ("百二", 102), ("千二百", 1200), ("一万二千", 12000),
    ("1,200円", 1200), ("１，２００", 1200), ("3分の2", Fraction(2, 3)), ("1/2", Fraction(1, 2)),
    ("0.5", Fraction(1, 2)), ("-3", -3), ("−3", -3), ("マイナス3", -3), ("12.0 apples", 12), ("3万2千", 32000),
    ("\\frac{3}{4}", Fraction(3, 4)), ("-0.25", Fraction(-1, 4)), ("12 cm", 12),
])
def test_parse_number(text, value):
    assert parse_number(text) == Fraction(value)


@pytest.mark.parametrize("text", ["abc", "", "x2", "3 and 4"])
def test_parse_number_none(text):
    assert parse_number(text) is None


# (completion, reference, right?)
CASES = [
    ("Ken has 5 + 7 = 12 apples.\nAnswer: 12", "12", True),
    ("答え：１２個", "12", True),
    ("りんごは全部で十二個です。\n答え：十二", "12", True),
    ("The total is 1,200 yen.\nAnswer: 1,200", "1200", True),
    ("答えは3分の2です。", "2/3", True),
    ("Answer: 0.5", "1/2", True),
    ("Answer: 1/2", "0.5", True),
    ("So the answer is \\boxed{-3}.", "-3", True),
    ("答え：マイナス3", "-3", True),
    ("Answer: 12 - 5 = 7", "7", True),
    ("We get 19 in total, so Tom has 19 cards.", "19", True),  # no marker: the last number
    ("Answer: 12 apples", "12", True),
    # must NOT match
    ("Answer: 120", "12", False),
    ("Answer: 1.2", "12", False),
    ("Answer: 12.5", "12", False),
    ("I first thought 12, but the answer is 13.", "12", False),  # the right number only in the reasoning
    ("答え：二十", "12", False),  # 二十 is 20, not 十二
    ("答え：3分の2", "3/2", False),  # 3分の2 is 2/3
    ("Answer: 2/3", "3/2", False),
    ("Answer: 0.52", "1/2", False),
    ("Answer: 3", "-3", False),
    ("5 - 3 = 2", "-3", False),  # a subtraction is not a negative number
    ("\\boxed{12} ... wait, Answer: 12", "13", False),
    ("I don't know.", "12", False),
    ("答え：12個\n一緒に数えました。", "12", True),  # kanji in a word after the answer is no number
]


@pytest.mark.parametrize("text,ref,right", CASES)
def test_math_answer(text, ref, right):
    assert math_answer([text], answer=[ref]) == [float(right)]


def test_math_answer_conversational_and_none():
    comps = [[{"role": "assistant", "content": "答え：7"}], [{"role": "assistant", "content": "Answer: 8"}]]
    assert math_answer(comps, answer=["7", None]) == [1.0, None]
    assert math_answer(["Answer: 1"], solution=["1"]) == [1.0]  # TRL's math datasets call it `solution`
    assert math_answer(["Answer: 1"]) == [None]
    with pytest.raises(ValueError, match="not a number"):
        math_answer(["Answer: 1"], answer=["one"])


def test_final_answer_priorities():
    assert final_answer("Answer: 4\nBut \\boxed{5}").value == 5  # the box wins
    assert final_answer("Answer: 4. Then 9 more examples.").value == 4  # the marker beats the last number
    assert final_answer("nothing here") is None


@pytest.mark.parametrize("text,ok", [
    ("5 + 7 = 12\nAnswer: 12", True), ("計算すると12です。\n答え：１２個", True), ("Answer: 12.", True),
    ("The answer is -3.", True), ("\\boxed{1/2}", True),
    ("Answer: 12\nI hope this helps!", False),  # not on the last line
    ("Answer: 12 or 13", False),  # two numbers: no single answer
    ("12", False), ("Answer:", False), ("", False),
])
def test_answer_last_line(text, ok):
    assert answer_last_line([text]) == [float(ok)]


def test_think_answer_and_regex():
    assert think_answer(["<think>5+7</think>\n<answer>12</answer>", "<think></think><answer>12</answer>",
                         "<answer>12</answer>", "hi <think>a</think><answer>b</answer>"]) == [1.0, 0.0, 0.0, 0.0]
    assert regex_format(["Answer: 12", "12"], pattern=r"Answer: \d+") == [1.0, 0.0]
    assert regex_format([" Answer: 12 "], pattern=r"Answer: \d+", full=True) == [1.0]
    with pytest.raises(ValueError, match="format pattern"):
        regex_format(["x"], pattern="(")


def test_language():
    assert text_language("答えは12個です。") == "ja"
    assert text_language("The answer is 12.") == "en"
    assert text_language("The answer is 12 (十二).") == "en"  # one kanji does not make an answer Japanese
    assert text_language("12") is None
    assert prompt_language(["答え：12", "Answer: 12", "12"], prompts=["りんごは何個？", "How many?", "7 + 5 ="],
                           lang=None) == [1.0, 1.0, None]
    assert prompt_language(["Answer: 12"], lang=["ja"]) == [0.0]


def test_instruction_following():
    rows = [[{"type": "no_commas"}, {"type": "word_count", "max": 5}],
            [{"type": "keywords", "keywords": ["Tokyo"]}, {"type": "ends_with", "phrase": "以上です。"}],
            [{"type": "json"}], [{"type": "char_count", "min": 3, "max": 6}], [{"type": "language", "lang": "ja"}],
            []]
    comps = ["One two, three", "tokyo は大きい。以上です。", "```json\n{\"a\": 1}\n```", "東京 都です", "Hello",
             "anything"]
    assert instruction_following(comps, constraints=rows) == [0.5, 1.0, 1.0, 1.0, 0.0, None]
    assert instruction_following(comps[:1], constraints=rows[:1], strict=True) == [0.0]
    assert instruction_following(["{bad json"], constraints=[[{"type": "json"}]]) == [0.0]
    with pytest.raises(ValueError, match="unknown constraint"):
        instruction_following(["x"], constraints=[[{"type": "rhymes"}]])


def test_constraint_verifiers_by_name():
    assert set(VERIFIER_NAMES) >= {"math_answer", "answer_last_line", "word_count", "no_commas", "overlong_penalty"}
    wc = verifier("word_count", max=3)
    assert wc(["one two three", "one two three four"], prompts=["p", "p"], answer=["1", "2"]) == [1.0, 0.0]
    assert verifier("no_commas")(["a, b", "a b"]) == [0.0, 1.0]
    with pytest.raises(ValueError, match="unknown verifier"):
        verifier("nope")


def test_overlong_penalty():
    # DAPO: 0 up to max - cache, linear to -1 at max, -1 beyond (token counts from completion_ids)
    ids = [[0] * n for n in (10, 12, 14, 16, 17)]
    assert overlong_penalty(["x"] * 5, completion_ids=ids, max_tokens=16, cache_tokens=4) == [0.0, 0.0, -0.5, -1.0,
                                                                                             -1.0]
    with pytest.raises(ValueError):
        overlong_penalty(["x"], completion_ids=[[1]], max_tokens=4, cache_tokens=8)


def test_bundled_task_is_the_generators_output(tmp_path):
    """arith-v1 is what its generator writes (seeded), its splits share no problem, and every reference
    answer is one number the math verifier accepts from a right answer and rejects from a wrong one."""
    from llm_recipe.rewards.arithmetic import VERSIONS, write_bundled
    from llm_recipe.rewards.tasks import TASKS_DIR, load_task

    for name, args in VERSIONS.items():
        write_bundled(tmp_path / name, **args)
        for f in ("train.jsonl", "test.jsonl", "task.json"):
            assert (tmp_path / name / f).read_bytes() == (TASKS_DIR / name / f).read_bytes(), f
    task = load_task("arith-v1")
    assert (len(task.train), len(task.test)) == (2000, 300) and task.verifier == "math_answer"
    assert not {r["prompt"] for r in task.train} & {r["prompt"] for r in task.test}
    assert {r["lang"] for r in task.test} == {"ja", "en"}
    rows = task.test[:50]
    right = ["答え：" + r["answer"] if r["lang"] == "ja" else "Answer: " + r["answer"] for r in rows]
    wrong = [f"Answer: {int(r['answer']) + 1}" for r in rows]
    assert math_answer(right, answer=[r["answer"] for r in rows]) == [1.0] * 50
    assert math_answer(wrong, answer=[r["answer"] for r in rows]) == [0.0] * 50


def test_task_folder_errors(tmp_path):
    from llm_recipe.rewards.tasks import load_task

    with pytest.raises(FileNotFoundError, match="not a bundled task"):
        load_task(tmp_path / "none")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "train.jsonl").write_text('{"prompt": "1+1?", "answer": "2"}\n')
    (tmp_path / "t" / "test.jsonl").write_text('{"prompt": "1+1?", "answer": "2"}\n')
    with pytest.raises(ValueError, match="in both train and test"):
        load_task(tmp_path / "t")
    (tmp_path / "t" / "test.jsonl").write_text('{"answer": "2"}\n')
    with pytest.raises(ValueError, match=r"test.jsonl:1: a prompt record needs"):
        load_task(tmp_path / "t")
