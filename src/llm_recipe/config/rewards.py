"""Reward sources: where a reward comes from, for PPO / GRPO / RLOO / REINFORCE++, online DPO,
Best-of-N and `prefs label` (the `rewards:` list of each; `llm_recipe.rewards.sources` builds them).

    - {kind: rm, path: runs/x/reward_model/model, weight: 1.0}         a reward model (normalized score)
    - {kind: verifier, name: math_answer, weight: 1.0}                  a built-in verifier
    - {kind: verifier, name: word_count, args: {max: 50}}               ... with its settings
    - {kind: function, function: my_rewards.py:brevity, weight: 0.5}   a Python function (TRL's convention)
    - {kind: http, url: http://127.0.0.1:5000/get_reward}               a reward server (OpenRLHF's contract)
    - {kind: rule, rule: starts_with, value: "Let me explain."}         a rule of the rule-based labeler

A completion's reward is the weighted sum over the sources that gave it one (a source may return
None: "no reward here"); a completion no source rewards has no reward (counted, never trained on).
Each source is logged on its own (mean, std, share of None).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .section import Section


class _Source(Section):
    weight: float = Field(1.0, description="weight in the sum over sources")
    name: str | None = Field(None, description="label in metrics and plots; default: from the source")


class RMSource(_Source):
    kind: Literal["rm"]
    path: str | None = Field(None, description="reward model dir; None: the recipe's reward model")
    normalize: bool = Field(True, description="(r - mean) / std with the model's saved statistics")


class VerifierSource(_Source):
    kind: Literal["verifier"]
    verifier: str = Field(description="a built-in verifier (llm_recipe.rewards.verifiers)")
    args: dict[str, Any] = Field(default_factory=dict, description="its settings (keyword arguments)")


class FunctionSource(_Source):
    kind: Literal["function"]
    function: str = Field(description="'module.path:function' or 'path/to/file.py:function'")
    args: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments")
    conversational: bool = Field(
        False, description="pass prompts and completions as message lists, as TRL does for conversational data")


class HTTPSource(_Source):
    kind: Literal["http"]
    url: str = Field(description="the server's endpoint (POST, JSON batch in, {score_key: [...]} out)")
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(3, ge=0, description="retries of a failed request (connection, timeout, 5xx)")
    label_key: str | None = Field("answer", description="dataset column sent as OpenRLHF's `labels`")
    score_key: str = Field("rewards", description="the reply's list of rewards")
    batch_size: int = Field(256, ge=1, description="completions per request")
    api_key_env: str | None = Field(None, description="environment variable holding a bearer token (never stored)")


class RuleSource(_Source):
    kind: Literal["rule"]
    rule: Literal["starts_with", "contains", "regex", "length", "bleu", "rouge1", "rouge2", "rougeL"] = Field(
        description="a rule of the rule labeler (`preference.rules`)")
    value: str | None = Field(None, description="the prefix / substring / pattern the rule looks for")
    min_chars: int | None = Field(None, ge=0, description="rule 'length': fewest characters that score 1")
    max_chars: int | None = Field(None, ge=0, description="rule 'length': most characters that score 1")


RewardSourceConfig = Annotated[RMSource | VerifierSource | FunctionSource | HTTPSource | RuleSource,
                               Field(discriminator="kind")]


class RewardsMixin(Section):
    """The `rewards:` list a consumer section holds (None: the section's older reward settings)."""

    rewards: list[RewardSourceConfig] | None = Field(
        None, description="reward sources combined with weights (verifiers, functions, servers, reward "
        "models, rules); None: the section's reward_models / rules / the recipe's reward model")

    @model_validator(mode="after")
    def _distinct_names(self) -> RewardsMixin:
        if self.rewards:
            names = [source_name(s) for s in self.rewards]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"rewards: two sources are both named {dup[0]!r}: give one a `name`")
        return self


def source_name(s) -> str:
    """A source's label in metrics: its `name`, else what it is."""
    if s.name:
        return s.name
    if s.kind == "rm":
        return "rm" if s.path is None else f"rm:{s.path.rstrip('/').split('/')[-1]}"
    if s.kind == "verifier":
        return s.verifier
    if s.kind == "function":
        return s.function.rpartition(":")[2]
    if s.kind == "http":
        return "http"
    return f"rule:{s.rule}"
