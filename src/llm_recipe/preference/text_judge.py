"""Judges that write their verdict: any chat model, behind an endpoint or loaded here.

    LocalChat(model, tokenizer, name)      a local model answering chat requests (greedy by default),
                                           the same interface as `endpoint.ChatEndpoint`
    TextJudge(backend, template)           pairwise verdicts in both orders, read from the answer
                                           text (`verdicts.parse_pairwise`); a verdict that cannot
                                           be read counts as no preference and is counted
    chat_backend(spec, compute, cache)     an endpoint config -> ChatEndpoint (checked), a path -> LocalChat
    pairwise_judge(...)                    the judge a stage asked for: an endpoint (TextJudge), or a
                                           local model read from its A/B logits (`judge.CausalLMJudge`)
    ChatModels(compute, cache_path)        the models a stage talks to (local folders or endpoints), each
                                           loaded / connected once: responders and judges by spec

`TextJudge.compare` returns the same `judge.Verdict`s as the logit judge, margins +1 (first
position picked), -1 (second) or 0 (tie or unreadable), so win rates, position bias and labelling
treat both the same way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict

from ..config import ComputeConfig, JudgeEndpointConfig, SamplingConfig
from .endpoint import ChatEndpoint, Completion, Usage
from .judge import Verdict
from .records import prompt_key
from .verdicts import parse_pairwise

MARGIN = {"A": 1.0, "B": -1.0, "tie": 0.0, None: 0.0}


class LocalChat:
    """A local causal LM as a chat backend (generation with the KV cache, batched, seeded)."""

    kind = "local"

    def __init__(self, model, tokenizer, name: str, max_new_tokens: int = 256, chat_format: str | None = None,
                 seed: int = 0):
        self.model, self.tokenizer, self.path = model, tokenizer, name
        self.max_new_tokens, self.chat_format, self.seed = max_new_tokens, chat_format, seed
        self.usage = Usage()

    @property
    def name(self) -> str:
        return self.path

    def describe(self) -> dict:
        return {"kind": "local", "model": self.path, "usage": asdict(self.usage)}

    def identity(self) -> dict:
        return {"path": self.path, "weights": None}

    def check(self) -> None:
        return None

    def chat(self, conversations: Sequence[list[dict]], sampling: SamplingConfig | None = None,
             seed: int | None = None, repeat: int = 0) -> list[Completion]:
        from ..infer.generate import chat_prompt_ids, generate_chat
        from ..tokenizer.chat_formats import resolve_chat_format

        sampling = sampling or SamplingConfig(temperature=0.0, max_new_tokens=self.max_new_tokens)
        convs = [list(c) for c in conversations]
        # `repeat` asks again: a local greedy judge answers the same, which is what its consistency is
        gens = generate_chat(self.model, self.tokenizer, convs, sampling, self.seed if seed is None else seed,
                             chat_format=self.chat_format)
        prompts = chat_prompt_ids(self.tokenizer, resolve_chat_format(self.tokenizer, self.chat_format), convs)
        out = [Completion(g.text, "stop" if g.finish_reason != "length" else "length", len(p), len(g.token_ids))
               for g, p in zip(gens, prompts, strict=True)]
        for c in out:
            self.usage.add(c)
        return out


class TextJudge:
    """Pairwise verdicts from a chat model's written answer, each pair asked in both orders."""

    def __init__(self, backend, template: str, system: str | None = None):
        self.backend, self.template, self.system = backend, template, system
        self.judged = 0
        self.unparseable = 0

    @property
    def name(self) -> str:
        return self.backend.name

    def _conversation(self, prompt, a: str, b: str) -> list[dict]:
        text = self.template.format(prompt=prompt_key(prompt), a=a, b=b)
        return ([{"role": "system", "content": self.system}] if self.system else []) + [{"role": "user", "content": text}]

    def compare(self, items: Sequence[tuple]) -> list[Verdict]:
        """Verdicts for (prompt, first, second) triples, each judged in both orders."""
        n = len(items)
        convs = [self._conversation(p, x, y) for p, x, y in items] + [self._conversation(p, y, x) for p, x, y in items]
        answers = self.backend.chat(convs) if convs else []
        verdicts = []
        for i in range(n):
            l1, l2 = parse_pairwise(answers[i].text), parse_pairwise(answers[n + i].text)
            self.judged += 2
            self.unparseable += (l1 is None) + (l2 is None)
            m1, m2 = MARGIN[l1], MARGIN[l2]
            winner = 1 if m1 > 0 and m2 < 0 else -1 if m1 < 0 and m2 > 0 else 0
            verdicts.append(Verdict(winner, m1, m2, labels=(l1, l2)))
        return verdicts

    def describe(self) -> dict:
        return {**self.backend.describe(), "mode": "pairwise (written verdict, both orders)",
                "judgements": self.judged, "unparseable": self.unparseable}

    def identity(self) -> dict:
        return self.backend.identity()


def chat_backend(spec: str | JudgeEndpointConfig, compute: ComputeConfig, cache_path: str | os.PathLike | None = None,
                 chat_format: str | None = None, max_new_tokens: int = 256, seed: int = 0):
    """An endpoint config -> a checked `ChatEndpoint`; a model path -> `LocalChat` (loaded here)."""
    if isinstance(spec, JudgeEndpointConfig):
        backend = ChatEndpoint(spec, cache_path)
        backend.check()
        return backend
    from ..models.loading import load_tokenizer
    from ..models.placement import load_model

    return LocalChat(load_model(spec, compute), load_tokenizer(spec), str(spec), max_new_tokens, chat_format, seed)


def pairwise_judge(spec: str | JudgeEndpointConfig, template: str, compute: ComputeConfig,
                   choices: tuple[str, str] = ("A", "B"), chat_format: str | None = None,
                   cache_path: str | os.PathLike | None = None, model=None, tokenizer=None):
    """An endpoint -> `TextJudge` (its `template` overrides the stage's); a local model -> the
    logit judge `CausalLMJudge` (a loaded `model` / `tokenizer` is reused)."""
    if isinstance(spec, JudgeEndpointConfig):
        return TextJudge(chat_backend(spec, compute, cache_path), spec.template or template, spec.system)
    from ..models.loading import load_tokenizer
    from ..models.placement import load_model
    from .judge import CausalLMJudge

    model = model if model is not None else load_model(spec, compute)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(spec)
    return CausalLMJudge(model, tokenizer, template, choices, chat_format)


def judge_autocast(judge, compute: ComputeConfig):
    """Mixed precision around a judge's local model (none for an endpoint)."""
    model = getattr(judge, "model", None) or getattr(getattr(judge, "backend", None), "model", None)
    if model is None:
        return contextlib.nullcontext()
    from ..models.placement import autocast

    return autocast(compute, model.device)


class ChatModels:
    """The chat models a stage talks to, each loaded or connected once: local model folders (a
    policy, critic and judge may coincide) and endpoints (their answers cached in `cache_path`)."""

    def __init__(self, compute: ComputeConfig, cache_path: str | os.PathLike | None = None,
                 chat_format: str | None = None):
        self.compute, self.cache_path, self.chat_format = compute, cache_path, chat_format
        self.local: dict[str, tuple] = {}
        self.endpoints: dict[str, ChatEndpoint] = {}

    @staticmethod
    def name(spec: str | JudgeEndpointConfig) -> str:
        return f"{spec.model} @ {spec.base_url}" if isinstance(spec, JudgeEndpointConfig) else str(spec)

    def loaded(self, path: str) -> tuple:
        if path not in self.local:
            from ..models.loading import load_tokenizer
            from ..models.placement import load_model

            self.local[path] = (load_model(path, self.compute), load_tokenizer(path))
        return self.local[path]

    def endpoint(self, spec: JudgeEndpointConfig) -> ChatEndpoint:
        key = spec.model_dump_json()
        if key not in self.endpoints:
            self.endpoints[key] = chat_backend(spec, self.compute, self.cache_path)
        return self.endpoints[key]

    def responder(self, spec: str | JudgeEndpointConfig, sampling: SamplingConfig,
                  next_seed: Callable[[], int]) -> Callable[[list[list[dict]]], list[str]]:
        """conversations -> one reply each, sampled with `sampling` and a fresh seed per call."""
        if isinstance(spec, JudgeEndpointConfig):
            client = self.endpoint(spec)
            return lambda convs: [c.text for c in client.chat(convs, sampling, seed=next_seed())]
        from ..infer.generate import generate_chat

        model, tok = self.loaded(spec)
        return lambda convs: [g.text for g in generate_chat(model, tok, convs, sampling, seed=next_seed(),
                                                            chat_format=self.chat_format)]

    def judge_factory(self, spec: str | JudgeEndpointConfig) -> Callable[[str], object]:
        """template -> a pairwise judge (both orders) with that prompt."""
        if isinstance(spec, JudgeEndpointConfig):
            return lambda template: TextJudge(self.endpoint(spec), template, spec.system)
        from .judge import CausalLMJudge

        model, tok = self.loaded(spec)
        return lambda template: CausalLMJudge(model, tok, template, chat_format=self.chat_format, name=str(spec))
