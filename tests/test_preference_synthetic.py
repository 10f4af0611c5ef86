"""The generated preference sets behind the recipe's reward model: style pairs and fluency pairs."""

from llm_recipe.config import RMConfig
from llm_recipe.demo.style import (
    STYLE_PREFIX,
    fluency_pairs,
    single_turn_examples,
    style_preference_pairs,
)
from llm_recipe.preference.records import prompt_key
from llm_recipe.stages.reward import rm_pairs


def test_fluency_pairs_prefer_the_clean_answer_with_and_without_the_prefix():
    pairs = fluency_pairs(60, seed=0)
    assert pairs == fluency_pairs(60, seed=0) and pairs != fluency_pairs(60, seed=1)  # seeded
    answers = {a for _, a in single_turn_examples(400, seed=30_000)}
    styled = 0
    for p in pairs:
        assert p.chosen != p.rejected
        has_prefix = p.chosen.startswith(STYLE_PREFIX)
        styled += has_prefix
        # Only the rejected side is garbled, and both sides carry the prefix or neither does: the
        # pair teaches fluency, never the style.
        assert p.rejected.startswith(STYLE_PREFIX) == has_prefix
        assert p.chosen.removeprefix(STYLE_PREFIX) in answers
    assert len(pairs) >= 55 and abs(styled - len(pairs) / 2) <= 1


def test_rm_data_mixes_both_sets_and_keeps_held_out_prompts_out_of_training():
    train, held, _, _ = rm_pairs(RMConfig(synthetic_pairs=200, fluency_pairs=100), seed=0)
    sources = {p.meta["source"] for p in train + held}
    assert sources == {"style_synthetic", "fluency_synthetic"}
    assert len(train) + len(held) == len(style_preference_pairs(200, 0)) + len(fluency_pairs(100, 0))
    assert not {prompt_key(p.prompt) for p in train} & {prompt_key(p.prompt) for p in held}
    plain, _, _, _ = rm_pairs(RMConfig(synthetic_pairs=200), seed=0)
    assert {p.meta["source"] for p in plain} == {"style_synthetic"}
