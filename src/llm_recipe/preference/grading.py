"""Single-answer grading: a judge rates one answer 1-10 and says why (MT-Bench's single mode).

    GradeItem(question, answer, lang, reference?, history?)   one answer to grade; `history` holds
                                                the earlier turns (question, answer) of a
                                                multi-turn conversation: only the last answer is
                                                graded, read in their context
    grade_answers(backend, items, repeat=0)     the judge's Grades (score or None, rationale text)
    PAIRWISE_MULTI_TURN                         the pairwise prompt for two whole conversations

The prompts are this project's own (English and Japanese). A question with one right answer
(math, reasoning, extraction, coding) is graded against its reference answer: without one a
judge, even a strong one, is swayed by a confident wrong answer. The grade is read with
`verdicts.parse_grade`; an answer with no readable grade is counted (`Grade.score` None), never
guessed. `repeat` > 0 asks the judge again for the same answer (its consistency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .verdicts import parse_grade

SYSTEM = {"en": "You are a careful and impartial grader of AI assistant answers.",
          "ja": "あなたはAIアシスタントの回答を公平かつ丁寧に採点する採点者です。"}

_RUBRIC = {
    "en": ("Judge the answer's helpfulness, correctness, relevance, depth and clarity. Do not reward length "
           "for its own sake, and do not let the answer's confidence replace checking it. {ref}Write a short "
           "explanation (a few sentences), then the grade from 1 (useless or wrong) to 10 (excellent), "
           'exactly in this form: "Rating: [[N]]".'),
    "ja": ("回答の有用性・正確さ・質問との関連・深さ・分かりやすさを評価してください。長さそのものを評価せず、"
           "自信のある書きぶりを確認の代わりにしないでください。{ref}短い説明（数文）を書いたあと、"
           "1（役に立たない・誤り）から10（非常に良い）の点数を、必ず次の形式で示してください: \"Rating: [[N]]\"。"),
}
_REF_NOTE = {"en": "A reference answer, which is correct, is given: compare the assistant's answer with it; a "
                   "wrong final result is a low grade however well it is written. ",
             "ja": "正しい参考解答を示します。アシスタントの回答を参考解答と照らし合わせ、最終的な答えが誤っていれば"
                   "書き方が良くても低い点数にしてください。"}
_LABELS = {
    "en": {"one": "Grade the AI assistant's answer to the user's question below.",
           "last": "Below is a conversation between a user and an AI assistant. Grade only the assistant's LAST "
                   "answer, read in the context of the whole conversation.",
           "q": "Question", "a": "Assistant's answer", "ref": "Reference answer", "turn": "Turn"},
    "ja": {"one": "以下のユーザーの質問に対するAIアシスタントの回答を採点してください。",
           "last": "以下はユーザーとAIアシスタントの会話です。会話全体の文脈を踏まえて、アシスタントの最後の回答だけを"
                   "採点してください。",
           "q": "質問", "a": "アシスタントの回答", "ref": "参考解答", "turn": "ターン"},
}

PAIRWISE_MULTI_TURN = {
    "en": ("Two AI assistants held the same conversation with a user. Decide which assistant served the user "
           "better over the whole conversation: correct, helpful answers that follow each request, the later "
           "ones in the light of the earlier turns. The order in which they are shown and the answers' length "
           "must not matter. Explain briefly, then give the verdict exactly in this form: \"[[A]]\" if "
           "assistant A is better, \"[[B]]\" if assistant B is better, \"[[C]]\" for a tie.\n\n"
           "[The user's requests]\n{prompt}\n\n[Assistant A]\n{a}\n\n[Assistant B]\n{b}"),
    "ja": ("2つのAIアシスタントが、同じユーザーと同じ会話をしました。会話全体を通して、どちらのアシスタントが"
           "ユーザーの役に立ったかを判定してください。各依頼に正しく有用に応え、後の依頼には前のやり取りを踏まえて"
           "応えているかを見ます。表示の順番や回答の長さで判断しないでください。簡潔に理由を述べ、最後に必ず次の形式で"
           "判定を示してください: Aが良ければ \"[[A]]\"、Bが良ければ \"[[B]]\"、同等なら \"[[C]]\"。\n\n"
           "[ユーザーの依頼]\n{prompt}\n\n[アシスタントA]\n{a}\n\n[アシスタントB]\n{b}"),
}


@dataclass(frozen=True)
class GradeItem:
    question: str
    answer: str
    lang: str = "en"
    reference: str | None = None
    history: tuple[tuple[str, str], ...] = ()  # earlier (question, answer) turns


@dataclass
class Grade:
    score: float | None  # None: no readable grade in the judge's answer
    rationale: str  # the judge's whole answer


def _lang(lang: str) -> str:
    return lang if lang in _RUBRIC else "en"


def grade_prompt(item: GradeItem) -> list[dict]:
    """The judge's conversation (system + one user message) for one answer."""
    lang = _lang(item.lang)
    lab = _LABELS[lang]
    rubric = _RUBRIC[lang].format(ref=_REF_NOTE[lang] if item.reference else "")
    if not item.history:
        parts = [lab["one"], rubric, f"[{lab['q']}]\n{item.question}"]
    else:
        parts = [lab["last"], rubric]
        for t, (q, a) in enumerate(item.history, 1):
            parts += [f"[{lab['turn']} {t}: {lab['q']}]\n{q}", f"[{lab['turn']} {t}: {lab['a']}]\n{a}"]
        parts.append(f"[{lab['turn']} {len(item.history) + 1}: {lab['q']}]\n{item.question}")
    if item.reference:
        parts.append(f"[{lab['ref']}]\n{item.reference}")
    turn = f"{lab['turn']} {len(item.history) + 1}: " if item.history else ""
    parts.append(f"[{turn}{lab['a']}]\n{item.answer}")
    return [{"role": "system", "content": SYSTEM[lang]}, {"role": "user", "content": "\n\n".join(parts)}]


def grade_answers(backend, items: Sequence[GradeItem], repeat: int = 0) -> list[Grade]:
    """Grade every item with one batched call of the backend (an endpoint or a local model)."""
    if not items:
        return []
    answers = backend.chat([grade_prompt(it) for it in items], repeat=repeat)
    return [Grade(parse_grade(a.text), a.text) for a in answers]
