"""The OpenAI request shapes `llm-recipe serve` accepts, and its errors in OpenAI's error shape.

    ChatRequest, CompletionRequest     validated request bodies (unknown fields are ignored, as
                                       OpenAI-compatible servers do; features this server does not
                                       have, e.g. tools or logprobs, are refused by name)
    sampling_of(req, defaults, limit)  the request's sampling settings: the server's `serve.sampling`
                                       defaults with the request's own fields on top
    ApiError(status, message, ...)     raised anywhere in a handler -> {"error": {"message", "type",
                                       "param", "code"}} with that status
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import SamplingConfig

MAX_STOP = 4


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=-1)  # vLLM's extension; -1 / 0: off
    repetition_penalty: float | None = Field(None, gt=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: dict | None = None
    ignore_eos: bool = False  # vLLM's extension: generate exactly max_tokens (benchmarks)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: bool | int | None = None
    logit_bias: dict | None = None

    def refuse_unsupported(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ApiError(400, f"{name} is not supported by this server (use repetition_penalty)", param=name)
        if self.logprobs:
            raise ApiError(400, "logprobs are not supported by this server", param="logprobs")
        if self.logit_bias:
            raise ApiError(400, "logit_bias is not supported by this server", param="logit_bias")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        if any(p.type != "text" for p in self.content):
            raise ApiError(400, "only text content parts are supported", param="messages")
        return "".join(p.text or "" for p in self.content)


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list | None = None

    def refuse_unsupported(self) -> None:
        super().refuse_unsupported()
        if self.tools:
            raise ApiError(400, "tools are not supported by this server", param="tools")


class CompletionRequest(_Request):
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def refuse_unsupported(self) -> None:
        super().refuse_unsupported()
        if self.echo or self.suffix or (self.best_of or 1) > 1:
            raise ApiError(400, "echo, suffix and best_of are not supported by this server")

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        if not prompts:
            raise ApiError(400, "prompt is empty", param="prompt")
        return prompts


def parse(cls: type[_Request], body) -> _Request:
    """A request body -> its model, or a 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        req = cls.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err.get("loc", ())) or "body"
        raise ApiError(400, f"invalid {field}: {err.get('msg', 'bad value')}", param=field) from None
    req.refuse_unsupported()
    return req


def sampling_of(req: _Request, defaults: SamplingConfig, max_tokens_limit: int) -> tuple[SamplingConfig, bool]:
    """(the request's sampling settings, whether it asked for a length itself)."""
    asked = req.max_completion_tokens or req.max_tokens
    max_tokens = asked or defaults.max_new_tokens
    if max_tokens > max_tokens_limit:
        raise ApiError(400, f"max_tokens {max_tokens} is over this server's limit of {max_tokens_limit}",
                       param="max_tokens")
    stop = [req.stop] if isinstance(req.stop, str) else req.stop if req.stop is not None else defaults.stop
    if len(stop) > MAX_STOP or not all(stop):
        raise ApiError(400, f"stop: at most {MAX_STOP} non-empty strings", param="stop")
    update = {"max_new_tokens": max_tokens, "stop": list(stop)}
    if req.temperature is not None:
        update["temperature"] = req.temperature
    if req.top_p is not None:
        update["top_p"] = req.top_p
    if req.top_k is not None:
        update["top_k"] = req.top_k if req.top_k > 0 else None
    if req.repetition_penalty is not None:
        update["repetition_penalty"] = req.repetition_penalty
    return defaults.model_copy(update=update), asked is not None
