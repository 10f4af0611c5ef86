"""Which pairs a ranking, scores or an UltraFeedback record becomes (`prefs convert --pairs`), and
the help texts that list every choice from its one definition (#31)."""

import json
import typing

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import LabelConfig, SFTConfig
from llm_recipe.config.stages import PairPolicy
from llm_recipe.preference.converters import read_preference_files

UF = {"instruction": "Name a fruit.", "completions": [
    {"response": "Apple.", "overall_score": 8.0}, {"response": "A rock.", "overall_score": 2.0},
    {"response": "Banana.", "overall_score": 9.0}, {"response": "Soup.", "overall_score": 5.0}]}
RANKED = {"prompt": "Best city?", "responses": ["Rome", "Oslo", "Lima"], "ranking": [2, 0, 1]}


@pytest.mark.parametrize("policy,want", [
    ("all", {("Banana.", "Apple."), ("Banana.", "A rock."), ("Banana.", "Soup."), ("Apple.", "A rock."),
             ("Apple.", "Soup."), ("Soup.", "A rock.")}),
    ("best_vs_worst", {("Banana.", "A rock.")}),
    ("best_vs_rest", {("Banana.", "Apple."), ("Banana.", "A rock."), ("Banana.", "Soup.")}),
])
def test_ultrafeedback_and_rankings_by_policy(policy, want, tmp_path):
    data = tmp_path / "prefs.jsonl"
    data.write_text(json.dumps(UF) + "\n" + json.dumps(RANKED) + "\n", encoding="utf-8")
    pairs, log = read_preference_files([data], pairs_from=policy)
    uf = {(p.chosen, p.rejected) for p in pairs if p.prompt == "Name a fruit."}
    ranked = [(p.chosen, p.rejected) for p in pairs if p.prompt == "Best city?"]
    assert uf == want and log.total_skipped == 0
    assert ranked == {"all": [("Lima", "Rome"), ("Lima", "Oslo"), ("Rome", "Oslo")],
                      "best_vs_worst": [("Lima", "Oslo")], "best_vs_rest": [("Lima", "Rome"), ("Lima", "Oslo")]}[policy]


def test_a_tie_with_the_best_is_counted_not_paired(tmp_path):
    data = tmp_path / "scores.jsonl"
    data.write_text(json.dumps({"prompt": "q", "responses": ["a", "b", "c"], "scores": [3, 3, 1]}) + "\n",
                    encoding="utf-8")
    pairs, log = read_preference_files([data], pairs_from="best_vs_rest")
    assert [(p.chosen, p.rejected) for p in pairs] == [("a", "c")] and log.skipped == {"tie": 1}


def test_prefs_convert_pairs_option_and_a_bad_choice(tmp_path):
    data = tmp_path / "uf.jsonl"
    data.write_text(json.dumps(UF) + "\n", encoding="utf-8")
    out = tmp_path / "pairs.jsonl"
    res = CliRunner().invoke(app, ["prefs", "convert", str(data), "--out", str(out), "--pairs", "best_vs_worst"])
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["chosen"] for x in out.read_text().splitlines()] == ["Banana."]
    res = CliRunner().invoke(app, ["prefs", "convert", str(data), "--out", str(out), "--pairs", "best_worst"])
    assert res.exit_code == 2 and "--pairs best_worst: choose one of all, best_vs_worst, best_vs_rest" in res.output


def _help(*cmd: str) -> str:
    res = CliRunner().invoke(app, [*cmd, "--help"], terminal_width=400)
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())


def test_help_texts_list_every_choice():
    """From the Literal that validates the setting, so a new choice shows up in the help by itself."""
    from llm_recipe.train.dpo import LOSSES

    for loss in LOSSES:  # the registry dpo.loss_type is checked against
        assert loss in _help("dpo")
    assert len(LOSSES) == 7
    for tracker in ("tensorboard", "wandb", "mlflow", "trackio"):
        assert tracker in _help("sft") and tracker in _help("grpo")
    for labeler in typing.get_args(LabelConfig.model_fields["labeler"].annotation):
        assert labeler in _help("prefs", "label")
    for fmt in typing.get_args(SFTConfig.model_fields["format"].annotation):
        assert fmt in _help("generate")
    convert = _help("prefs", "convert")
    for policy in typing.get_args(PairPolicy):
        assert policy in convert
    for shape in ("UltraFeedback", "ranking", "scores", "graded", "KTO", "hh-rlhf", "Parquet", "CSV", "datasets folder"):
        assert shape in convert
