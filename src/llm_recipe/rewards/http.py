"""A reward server over HTTP: OpenRLHF's remote reward contract (`--remote_rm_url`).

    POST {url}  {"query": [prompt + completion, ...], "prompts": [...], "labels": [...],
                 "completions": [...]}
    ->          {"rewards": [float | null, ...], ...}    one per query, in order

`query` is what OpenRLHF sends (the prompt followed by the completion), `labels` the dataset's
label column (`label_key`, e.g. the reference answer; null where a row has none); `completions`
is an extra this client adds (servers that do not read it ignore it). The reply's `rewards`
(`score_key`) are checked as a reward function's are (`function.check_rewards`): one number or
null per query. Every other key of the reply (OpenRLHF's `scores`, `extra_logs`) is ignored.

A request that fails (connection refused, timeout, HTTP 5xx, a reply that is not JSON) is
retried `retries` times with a growing pause; then `RewardServerError`, one line naming the URL
and what went wrong. A 4xx is not retried (the request itself is wrong). An API key is read from
the environment variable named in the config, sent as a bearer token, and written nowhere.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import httpx

from .function import RewardFunctionError, check_rewards
from .text import completion_text, prompt_text


class RewardServerError(ValueError):
    """The reward server cannot be used: the one-line reason."""


class HTTPReward:
    def __init__(self, url: str, *, timeout_s: float = 60.0, retries: int = 3, label_key: str | None = "answer",
                 score_key: str = "rewards", batch_size: int = 256, api_key_env: str | None = None,
                 backoff_s: float = 0.5):
        if not url.startswith(("http://", "https://")):
            raise RewardServerError(f"reward server url {url!r}: must start with http:// or https://")
        self.url, self.timeout_s, self.retries = url, timeout_s, retries
        self.label_key, self.score_key, self.batch_size = label_key, score_key, batch_size
        self.backoff_s = backoff_s
        headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise RewardServerError(f"reward server {url}: environment variable {api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(timeout=timeout_s, headers=headers)
        self.name = f"http:{url}"

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float | None]:
        labels = columns.get(self.label_key) if self.label_key else None
        out: list[float | None] = []
        for a in range(0, len(completions), self.batch_size):
            b = min(a + self.batch_size, len(completions))
            ps = [prompt_text(p) for p in prompts[a:b]]
            cs = [completion_text(c) for c in completions[a:b]]
            body = {"query": [p + c for p, c in zip(ps, cs, strict=True)], "prompts": ps, "completions": cs,
                    "labels": list(labels[a:b]) if labels is not None else [None] * (b - a)}
            out.extend(self._post(body, b - a, a))
        return out

    def _post(self, body: dict, n: int, offset: int) -> list[float | None]:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self.client.post(self.url, json=body)
            except httpx.TimeoutException:
                last = f"no reply within {self.timeout_s:g}s"
                continue
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'cannot connect'}"
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                raise RewardServerError(f"reward server {self.url}: HTTP {resp.status_code} "
                                        f"({resp.text.strip().splitlines()[0][:200] if resp.text.strip() else 'no body'})")
            try:
                reply = resp.json()
            except ValueError:
                last = "the reply is not JSON"
                continue
            if not isinstance(reply, dict) or self.score_key not in reply:
                raise RewardServerError(f"reward server {self.url}: the reply has no {self.score_key!r} list")
            try:
                return check_rewards(reply[self.score_key], n, self.name)
            except RewardFunctionError as e:
                raise RewardServerError(_shift_row(str(e), offset)) from None
        raise RewardServerError(f"reward server {self.url} is not answering: {last} "
                                f"(after {self.retries + 1} attempts)")

    def close(self) -> None:
        self.client.close()


def _shift_row(msg: str, offset: int) -> str:
    """Row numbers of a batch's error, as rows of the whole call."""
    import re

    return re.sub(r"row (\d+)", lambda m: f"row {int(m.group(1)) + offset}", msg, count=1)
