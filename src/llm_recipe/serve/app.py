"""`llm-recipe serve MODEL_DIR`: an OpenAI-compatible HTTP server for a model folder.

    GET  /v1/models              the served model (its folder and weights hash under "llm_recipe")
    POST /v1/chat/completions    chat in the model's saved chat format; "stream": true is server-sent
                                 events ending in `data: [DONE]`
    POST /v1/completions         plain continuation of one prompt or a list of prompts
    GET  /health, /metrics       liveness; counters (Prometheus text): requests, batches by size, tokens

Requests that arrive together are generated as one batch (`engine.Engine`). Sampling defaults are
the recipe's `serve.sampling`; a request's temperature, top_p, max_tokens, stop, seed and n override
them. The server listens on 127.0.0.1 unless told otherwise; with `api_key_env` every request but
/health needs `Authorization: Bearer <key>` (the key is read from that environment variable and
never printed or logged). Bodies over `serve.max_body_kb` are refused (413); a bad request is a 4xx
in OpenAI's error shape, never a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import ServeConfig
from ..infer.decoder import DecodeRow
from .engine import Engine, Job
from .protocol import ApiError, ChatRequest, CompletionRequest, parse, sampling_of

FINISH = {"stop": "stop", "length": "length", "cancelled": "stop", None: None}


@dataclass
class Served:
    """What the server serves and how (built once by `load_served`)."""
    name: str
    path: str
    model: object
    tokenizer: object
    chat_format: object | None  # None: the model has no chat template (/v1/chat/completions refuses)
    chat_stops: list[int]
    eos: list[int]
    context: int
    weights_sha256: str | None
    cfg: ServeConfig
    seeds: random.Random  # the seed of a request that brings none (`--seed`: a reproducible sequence)


def _error(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


async def _body(request: Request, limit: int) -> dict:
    """The JSON body, read up to `limit` bytes (413 beyond, whatever Content-Length says)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes is over this server's limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over this server's limit of {limit} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks) or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON ({getattr(e, 'msg', 'not UTF-8')})") from None


def _rows(served: Served, prompts: list[list[int]], req, stops: list[int]) -> tuple[list[DecodeRow], int]:
    params, asked = sampling_of(req, served.cfg.sampling, served.cfg.max_tokens_limit)
    if req.n > served.cfg.max_n:
        raise ApiError(400, f"n {req.n} is over this server's limit of {served.cfg.max_n}", param="n")
    seed = req.seed if req.seed is not None else served.seeds.getrandbits(62)
    rows = []
    for ids in prompts:
        room = served.context - len(ids)
        if room < 1:
            raise ApiError(400, f"the prompt is {len(ids)} tokens; this model's context is {served.context} tokens",
                           code="context_length_exceeded")
        if params.max_new_tokens > room and asked:
            raise ApiError(400, f"prompt ({len(ids)} tokens) + max_tokens ({params.max_new_tokens}) is over this "
                           f"model's context of {served.context} tokens", param="max_tokens",
                           code="context_length_exceeded")
        p = params.model_copy(update={"max_new_tokens": min(params.max_new_tokens, room)})
        rows += [DecodeRow(ids, p, seed, [] if req.ignore_eos else stops, served.tokenizer, index=i)
                 for i in range(req.n)]
    return rows, sum(len(ids) for ids in prompts)


async def _run(engine: Engine, rows: list[DecodeRow], prompt_tokens: int):
    """Submit a job; yields after every token of its batch until it is done."""
    loop, event = asyncio.get_running_loop(), asyncio.Event()
    job = Job(rows, lambda: loop.call_soon_threadsafe(event.set), prompt_tokens)
    engine.submit(job)
    try:
        while True:
            await event.wait()
            event.clear()
            yield job
            if job.done:
                return
    finally:
        job.cancel()  # a client that went away stops its rows (no-op when they finished)


def _usage(prompt_tokens: int, rows: list[DecodeRow]) -> dict:
    done = sum(len(r.ids) for r in rows)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": done, "total_tokens": prompt_tokens + done}


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _stream(request: Request, engine: Engine, rows, prompt_tokens, head: dict, chat: bool, usage: bool):
    def choice(i: int, text: str, finish: str | None, first: bool = False) -> dict:
        if chat:
            delta = ({"role": "assistant", "content": ""} if first else {"content": text} if text else {})
            return {"index": i, "delta": delta, "finish_reason": finish}
        return {"index": i, "text": text, "logprobs": None, "finish_reason": finish}

    async def events():
        if chat:
            yield _sse({**head, "choices": [choice(i, "", None, first=True) for i in range(len(rows))]})
        sent = [False] * len(rows)
        async for job in _run(engine, rows, prompt_tokens):
            if await request.is_disconnected():
                return  # _run's cleanup cancels the rows
            out = []
            for i, r in enumerate(rows):
                if sent[i]:
                    continue
                finish = r.finish  # read before the text: a row finishing meanwhile sends its rest next time
                ended = finish is not None and (job.done or finish != "cancelled")
                text = r.take_text()
                if text or ended:  # one entry per choice and chunk: the new text, and the reason on its last
                    out.append(choice(i, text, FINISH[finish] if ended else None))
                    sent[i] = ended
            if out:
                yield _sse({**head, "choices": out})
            if job.error:
                yield _sse(ApiError(500, f"generation failed: {job.error}", "server_error").body())
        if usage:
            yield _sse({**head, "choices": [], "usage": _usage(prompt_tokens, rows)})
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


async def _complete(request: Request, engine: Engine, rows, prompt_tokens) -> Job:
    async for job in _run(engine, rows, prompt_tokens):
        if job.done:
            if job.error:
                raise ApiError(500, f"generation failed: {job.error}", "server_error")
            return job
        if await request.is_disconnected():
            raise ApiError(499, "the client went away", "client_closed")
    raise AssertionError("unreachable")


class KeyCheck:
    """Every request but /health must carry `Authorization: Bearer <key>` (plain ASGI: streaming and
    disconnects pass through untouched). The key is compared in constant time and never echoed."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] != "/health":
            given = dict(scope["headers"]).get(b"authorization", b"")
            token = given[7:] if given[:7].lower() == b"bearer " else b""
            if not secrets.compare_digest(token, self.key):
                response = _error(ApiError(401, "missing or wrong API key (send Authorization: Bearer <key>)",
                                           code="invalid_api_key"))
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def _check_model(served: Served, name: str) -> None:
    if name != served.name:
        raise ApiError(404, f"the model '{name}' does not exist; this server serves '{served.name}'",
                       param="model", code="model_not_found")


def _errors_and_info(app: FastAPI, served: Served, engine: Engine) -> None:
    """Errors in OpenAI's shape, and the read-only routes: /health, /metrics, /v1/models."""
    created = int(time.time())

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception):
        engine.stats.errors += 1
        return _error(ApiError(500, f"internal error ({type(exc).__name__})", "server_error"))

    def model_card() -> dict:
        return {"id": served.name, "object": "model", "created": created, "owned_by": "llm-recipe",
                "root": served.path, "llm_recipe": {"weights_sha256": served.weights_sha256,
                                                     "chat_format": getattr(served.chat_format, "name", None),
                                                     "context": served.context}}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics() -> Response:
        return PlainTextResponse(engine.stats.prometheus(engine.queue_depth))

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    def model(name: str) -> dict:
        _check_model(served, name)
        return model_card()


def create_app(served: Served, api_key: str | None = None) -> FastAPI:
    cfg, limit = served.cfg, served.cfg.max_body_kb * 1024
    device = next(served.model.parameters()).device

    def autocast_ctx():
        from ..models.placement import autocast

        return autocast(cfg.compute, device)

    pad = served.tokenizer.pad_token_id if served.tokenizer.pad_token_id is not None else (served.eos or [0])[0]
    engine = Engine(served.model, pad, cfg.max_batch_size, cfg.batch_wait_ms, autocast_ctx)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    if api_key:
        app.add_middleware(KeyCheck, key=api_key)
    _errors_and_info(app, served, engine)

    def head(kind: str, prefix: str) -> dict:
        return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": served.name}

    async def respond(request: Request, req, prompts: list[list[int]], stops: list[int], chat: bool) -> Response:
        rows, n_prompt = _rows(served, prompts, req, stops)
        engine.stats.requests["chat" if chat else "completions"] += 1
        kind, prefix = ("chat.completion", "chatcmpl") if chat else ("text_completion", "cmpl")
        if req.stream:
            return _stream(request, engine, rows, n_prompt, head(kind + ".chunk" if chat else kind, prefix), chat,
                           bool((req.stream_options or {}).get("include_usage")))
        await _complete(request, engine, rows, n_prompt)
        choices = [{"index": i, **({"message": {"role": "assistant", "content": r.text}} if chat
                                   else {"text": r.text, "logprobs": None}), "finish_reason": FINISH[r.finish]}
                   for i, r in enumerate(rows)]
        return JSONResponse({**head(kind, prefix), "choices": choices, "usage": _usage(n_prompt, rows)})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        req: ChatRequest = parse(ChatRequest, await _body(request, limit))
        _check_model(served, req.model)
        if served.chat_format is None:
            raise ApiError(400, "this model has no chat template: use /v1/completions", code="no_chat_template")
        from ..infer.generate import chat_prompt_ids

        msgs = [{"role": m.role, "content": m.text()} for m in req.messages]
        return await respond(request, req, chat_prompt_ids(served.tokenizer, served.chat_format, [msgs]),
                             served.chat_stops, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        req: CompletionRequest = parse(CompletionRequest, await _body(request, limit))
        _check_model(served, req.model)
        ids = [served.tokenizer(p, add_special_tokens=True)["input_ids"] for p in req.prompts()]
        return await respond(request, req, ids, served.eos, chat=False)

    return app


def load_served(model_dir: str, cfg: ServeConfig, name: str | None = None, seed: int | None = None) -> Served:
    from ..infer.generate import chat_stop_ids
    from ..models.loading import load_tokenizer
    from ..models.placement import load_model
    from ..provenance import model_hashes
    from ..tokenizer.chat_formats import resolve_chat_format, saved_template

    model, tok = load_model(model_dir, cfg.compute), load_tokenizer(model_dir)
    fmt = resolve_chat_format(tok, cfg.chat_format) if (cfg.chat_format or saved_template(tok)) else None
    eos = getattr(model.generation_config, "eos_token_id", None)
    eos_ids = sorted({*(eos if isinstance(eos, list) else [eos] if eos is not None else []),
                      *([tok.eos_token_id] if tok.eos_token_id is not None else [])})
    context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    path = str(Path(model_dir).resolve()) if Path(model_dir).exists() else str(model_dir)
    return Served(name or Path(model_dir).name, path, model, tok, fmt,
                  chat_stop_ids(model, tok, fmt) if fmt else eos_ids, eos_ids, context,
                  model_hashes(model_dir)["weights"] if Path(model_dir).is_dir() else None, cfg,
                  random.Random(seed) if seed is not None else random.SystemRandom())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(model_dir: str, cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8000, name: str | None = None,
          api_key_env: str | None = None, seed: int | None = None, say=print) -> None:
    """Load the model and serve it until Ctrl-C / SIGTERM."""
    import uvicorn

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env, "")
        if not api_key:
            raise ValueError(f"--api-key-env {api_key_env}: that environment variable is not set or empty")
    served = load_served(model_dir, cfg, name, seed)
    app = create_app(served, api_key)
    if not is_loopback(host):
        say(f"warning: listening on {host}: anyone who can reach it can use the model"
            + ("" if api_key else " (no API key: set --api-key-env)") + "; put HTTPS in front")
    say(f"serving {served.path} as '{served.name}' on http://{host}:{port}/v1 (chat format: "
        f"{getattr(served.chat_format, 'name', 'none: /v1/completions only')}; "
        f"{'API key from $' + api_key_env if api_key else 'no API key'}; batches of up to {cfg.max_batch_size})")
    try:
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
    finally:
        app.state.engine.close()
