"""A chat model behind an OpenAI-compatible HTTP endpoint (vLLM, SGLang, llama.cpp server,
`llm-recipe serve`, a hosted API), as used by judges, critics and labelers.

    ChatEndpoint(cfg, cache_path).check()   GET /models: the endpoint answers and serves cfg.model
    ChatEndpoint.chat(conversations, ...)   one completion per conversation (POST /chat/completions),
                                            `concurrency` requests in flight, answered ones cached

Failures are one line each (`EndpointError`), never a traceback: an endpoint that is down or keeps
answering 5xx / 429 / nothing within `timeout` is retried `max_retries` times with exponential
backoff (jittered, `Retry-After` honoured) and then named; a refused key, an unknown model, an
answer that is not an OpenAI completion or comes from another model fail at once. When one request
fails for good, requests not yet sent are abandoned; every request answered before that is already
in the cache (`judge_cache.JudgeCache`), so the same command run again resumes where it stopped.

The API key is read from the environment variable `cfg.api_key_env` and lives only in the HTTP
client's headers: it is never in a message, the cache, a report or `describe()`.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass

from ..config import JudgeEndpointConfig, SamplingConfig
from .judge_cache import JudgeCache, request_key

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class EndpointError(RuntimeError):
    """An endpoint that cannot be used, in one line (the stage stops; answered requests are cached)."""


class _Abandoned(Exception):
    """A request not sent because another one failed for good."""


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


@dataclass
class Usage:
    """What a backend did: requests answered, retries, cache hits, tokens (from the endpoint's usage)."""
    calls: int = 0  # requests the endpoint answered (one per distinct request)
    retries: int = 0
    cache_hits: int = 0  # answers read from the cache instead
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, c: Completion) -> None:
        if c.cached:
            self.cache_hits += 1
        else:
            self.calls += 1
            self.prompt_tokens += c.prompt_tokens
            self.completion_tokens += c.completion_tokens


def _error_text(response) -> str:
    """The endpoint's own error message (OpenAI error JSON), else the start of the body."""
    try:
        err = response.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        if isinstance(msg, str) and msg:
            return msg.splitlines()[0][:200]
    except (ValueError, AttributeError):
        pass
    return (response.text or "").strip().replace("\n", " ")[:120] or "(empty body)"


def same_model(answered: str, requested: str) -> bool:
    """An answer from the requested model: the same name, or a dated version of it (gpt-4o -> gpt-4o-2024-08-06)."""
    return answered == requested or answered.startswith(requested + "-") or answered.rstrip("/").endswith("/" + requested)


class ChatEndpoint:
    kind = "endpoint"

    def __init__(self, cfg: JudgeEndpointConfig, cache_path: str | os.PathLike | None = None):
        import httpx

        self.cfg = cfg
        self.base_url = cfg.base_url.rstrip("/")
        headers = {}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env, "")
            if not key:
                raise EndpointError(f"{self.name}: the environment variable {cfg.api_key_env} (api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=cfg.timeout)
        self.cache = JudgeCache(cfg.cache or cache_path)
        self.usage = Usage()
        self.served: dict | None = None  # the endpoint's /models entry of the model
        self._lock = threading.Lock()
        self._failed = threading.Event()

    @property
    def name(self) -> str:
        return f"{self.cfg.model} @ {self.cfg.base_url}"

    def describe(self) -> dict:
        served = self.served or {}
        return {"kind": "endpoint", "base_url": self.cfg.base_url, "model": self.cfg.model,
                "served_root": served.get("root"), "usage": asdict(self.usage),
                "cache": str(self.cache.path) if self.cache.path else None, "cache_entries": len(self.cache),
                "cache_torn_lines": self.cache.torn_lines}

    def identity(self) -> dict:
        """What the endpoint says the model is (an `llm-recipe serve` endpoint: its folder and weights
        hash), for spotting a judge that grades its own answers."""
        served = self.served or {}
        info = served.get("llm_recipe") if isinstance(served.get("llm_recipe"), dict) else {}
        return {"path": served.get("root"), "weights": info.get("weights_sha256")}

    # ---- HTTP with retries ----------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None, allow: tuple[int, ...] = ()):
        import httpx

        delay, cfg = self.cfg.backoff, self.cfg
        for attempt in range(cfg.max_retries + 1):
            if self._failed.is_set():
                raise _Abandoned
            retry_after = None
            try:
                r = self._client.request(method, path, json=body)
            except httpx.TimeoutException:
                err = f"no answer within {cfg.timeout:g} s"
            except httpx.TransportError as e:
                err = f"cannot connect ({type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else 'no detail'})"
            else:
                if r.status_code == 200 or r.status_code in allow:
                    return r
                msg = _error_text(r)
                if r.status_code in (401, 403):
                    raise EndpointError(f"{self.name}: the API key was refused ({r.status_code}: {msg}; key from "
                                        f"{cfg.api_key_env or 'no api_key_env'})")
                if r.status_code == 404:
                    raise EndpointError(f"{self.name}: {path} answered 404 ({msg}): is the model name right, and "
                                        "base_url the API root (ending in /v1)?")
                if r.status_code not in RETRY_STATUS:
                    raise EndpointError(f"{self.name}: request refused ({r.status_code}: {msg})")
                err = f"HTTP {r.status_code} ({msg})"
                retry_after = r.headers.get("retry-after")
            if attempt == cfg.max_retries:
                raise EndpointError(f"{self.name}: {err}, {attempt + 1} tries")
            with self._lock:
                self.usage.retries += 1
            wait = delay * (1 + 0.25 * random.random())
            if retry_after and retry_after.replace(".", "", 1).isdigit():
                wait = max(wait, min(float(retry_after), 60.0))
            if self._failed.wait(wait):
                raise _Abandoned
            delay *= 2
        raise AssertionError("unreachable")

    def check(self) -> dict | None:
        """GET /models: the endpoint is up and serves `cfg.model` (skipped with check_model: false, or
        when the endpoint has no /models)."""
        if not self.cfg.check_model:
            return None
        r = self._request("GET", "/models", allow=(404, 405))
        if r.status_code != 200:
            return None
        try:
            models = [m for m in r.json()["data"] if isinstance(m, dict)]
        except (ValueError, KeyError, TypeError):
            raise EndpointError(f"{self.name}: GET /models did not answer an OpenAI model list "
                                f"({(r.text or '').strip()[:80]!r})") from None
        ids = [str(m.get("id")) for m in models]
        match = [m for m in models if same_model(str(m.get("id")), self.cfg.model)]
        if not match:
            raise EndpointError(f"{self.name}: the endpoint serves {ids[:5]}, not {self.cfg.model!r}")
        self.served = match[0]
        return self.served

    # ---- completions ----------------------------------------------------------------------
    def _body(self, messages: list[dict], sampling: SamplingConfig | None, seed: int | None) -> dict:
        cfg = self.cfg
        msgs = ([{"role": "system", "content": cfg.system}] if cfg.system and messages[0]["role"] != "system"
                else []) + [{"role": m["role"], "content": m["content"]} for m in messages]
        body = {"model": cfg.model, "messages": msgs,
                "max_tokens": sampling.max_new_tokens if sampling else cfg.max_tokens,
                "temperature": sampling.temperature if sampling else cfg.temperature}
        if sampling is not None and sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        if sampling is not None and sampling.stop:
            body["stop"] = list(sampling.stop)
        if (s := seed if seed is not None else cfg.seed) is not None:
            body["seed"] = s
        return body

    def _answer(self, body: dict, key: str) -> Completion:
        r = self._request("POST", "/chat/completions", body)
        try:
            data = r.json()
            choice = data["choices"][0]
            content = choice["message"]["content"]
            if content is not None and not isinstance(content, str):
                raise TypeError
        except (ValueError, KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.name}: the answer is not an OpenAI chat completion "
                                f"({(r.text or '').strip()[:80]!r})") from None
        answered = data.get("model")
        if self.cfg.check_model and isinstance(answered, str) and answered and not same_model(answered, self.cfg.model):
            raise EndpointError(f"{self.name}: answered by model {answered!r}, not {self.cfg.model!r}")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        c = Completion(content or "", choice.get("finish_reason"), int(usage.get("prompt_tokens") or 0),
                       int(usage.get("completion_tokens") or 0))
        self.cache.put(key, {"text": c.text, "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                             "completion_tokens": c.completion_tokens, "endpoint": self.cfg.base_url,
                             "model": self.cfg.model})
        return c

    def chat(self, conversations: Sequence[list[dict]], sampling: SamplingConfig | None = None,
             seed: int | None = None, repeat: int = 0) -> list[Completion]:
        """One completion per conversation, in order. `sampling` replaces the endpoint's max_tokens /
        temperature (a critic samples; a judge does not); `repeat` > 0 asks again instead of reading
        the cache (the judge's consistency)."""
        bodies = [self._body(list(conv), sampling, seed) for conv in conversations]
        keys = [request_key({"base_url": self.base_url, **b, "repeat": repeat}) for b in bodies]
        results: dict[str, Completion] = {}
        todo = {}
        for k, b in zip(keys, bodies, strict=True):
            if (hit := self.cache.get(k)) is not None:
                results[k] = Completion(hit["text"], hit.get("finish_reason"), int(hit.get("prompt_tokens") or 0),
                                        int(hit.get("completion_tokens") or 0), cached=True)
            else:
                todo.setdefault(k, b)  # the same request twice in one call is sent once
        if todo:
            self._send(todo, results)
        with self._lock:
            for k in keys:
                if results[k].cached:
                    self.usage.add(results[k])
            for k in todo:  # a request asked twice in one call was sent, and is counted, once
                self.usage.add(results[k])
        return [results[k] for k in keys]

    def _send(self, todo: dict[str, dict], results: dict[str, Completion]) -> None:
        self._failed.clear()
        first: EndpointError | None = None
        with ThreadPoolExecutor(max_workers=min(self.cfg.concurrency, len(todo))) as pool:
            futures = {pool.submit(self._answer, body, key): key for key, body in todo.items()}
            for f in as_completed(futures):
                try:
                    results[futures[f]] = f.result()
                except EndpointError as e:
                    first = first or e
                    self._failed.set()  # requests not yet sent are abandoned; in-flight ones finish
                except _Abandoned:
                    pass
        if first is not None:
            done = sum(1 for k in todo if k in results)
            raise EndpointError(f"{first} ({done} of {len(todo)} new requests answered and cached"
                                + (f" in {self.cache.path}" if self.cache.path else "") + ")")

    def close(self) -> None:
        self._client.close()
