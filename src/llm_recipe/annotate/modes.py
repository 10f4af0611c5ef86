"""The three ways of judging an item, each as: what the form sends -> the canonical answer, and
the canonical answer -> annotation records that `prefs agreement` reads.

The form speaks in display positions (answer 1 = shown first); the database and every export speak
in the item's own order (A = responses[0]), so a label means the same whatever side it was shown on.

    pairwise  "1" | "2" | "tie" | "both_bad"          -> "A" | "B" | "tie" | "both_bad"
    scale     1..7 (1: answer 1 much better, 4: equal) -> 1..7 with 1 = A much better
    ranking   "2 1 3" (display numbers, best first)    -> [response indices, best first]

Agreement and pairs come from the records: a scale grade counts as A (1-3), tie (4) or B (5-7);
a ranking of k answers becomes its k(k-1)/2 pairs, each an item `ID/i-j` of its own.
"""

from __future__ import annotations

import itertools
from typing import Any


class InvalidChoice(ValueError):
    """A submitted answer that does not fit the project's mode."""


class Pairwise:
    name = "pairwise"
    choices = ("1", "2", "tie", "both_bad")

    def parse(self, choice: str, shown: list[int]) -> Any:
        if choice not in self.choices:
            raise InvalidChoice(f"choice must be one of {', '.join(self.choices)}")
        return "AB"[shown[int(choice) - 1]] if choice in ("1", "2") else choice

    def choice_of(self, value: Any, shown: list[int]) -> str:
        return str(shown.index("AB".index(value)) + 1) if value in ("A", "B") else value

    def winner(self, value: Any) -> int | None:
        """The response index judged best, or None when the answer picks none."""
        return "AB".index(value) if value in ("A", "B") else None

    def records(self, item: dict, value: Any) -> list[dict]:
        return [{"item_id": item["ext_id"], "label": value, **_texts(item, 0, 1)}]


class Scale(Pairwise):
    name = "scale"
    choices = tuple(str(g) for g in range(1, 8))

    def parse(self, choice: str, shown: list[int]) -> Any:
        if choice not in self.choices:
            raise InvalidChoice("choice must be a grade from 1 to 7")
        return int(choice) if shown[0] == 0 else 8 - int(choice)

    def choice_of(self, value: Any, shown: list[int]) -> str:
        return str(value if shown[0] == 0 else 8 - value)

    def winner(self, value: Any) -> int | None:
        return None if value == 4 else int(value > 4)

    def records(self, item: dict, value: Any) -> list[dict]:
        label = "A" if value < 4 else "B" if value > 4 else "tie"
        return [{"item_id": item["ext_id"], "label": label, "grade": value, **_texts(item, 0, 1)}]


class Ranking:
    name = "ranking"

    def parse(self, choice: str, shown: list[int]) -> Any:
        try:
            order = [int(x) for x in choice.replace(",", " ").split()]
        except ValueError:
            raise InvalidChoice("the ranking is answer numbers, best first, e.g. '2 1 3'") from None
        if sorted(order) != list(range(1, len(shown) + 1)):
            raise InvalidChoice(f"rank each of the {len(shown)} answers exactly once, best first")
        return [shown[d - 1] for d in order]

    def choice_of(self, value: Any, shown: list[int]) -> str:
        return " ".join(str(shown.index(i) + 1) for i in value)

    def winner(self, value: Any) -> int | None:
        return value[0]

    def records(self, item: dict, value: Any) -> list[dict]:
        rank = {resp: pos for pos, resp in enumerate(value)}
        return [{"item_id": f"{item['ext_id']}/{i}-{j}", "label": "A" if rank[i] < rank[j] else "B",
                 "ranking": value, **_texts(item, i, j)}
                for i, j in itertools.combinations(range(len(item["responses"])), 2)]


def _texts(item: dict, i: int, j: int) -> dict:
    return {"prompt": item["prompt"], "response_a": item["responses"][i], "response_b": item["responses"][j]}


MODES = {m.name: m for m in (Pairwise(), Scale(), Ranking())}
