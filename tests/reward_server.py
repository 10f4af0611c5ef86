"""A reward server for the tests, speaking OpenRLHF's remote reward contract, run as its own process:

    python tests/reward_server.py PORT

    POST /get_reward   {"query": [...], "prompts": [...], "labels": [...]} -> {"rewards": [...]}:
                       1.0 when the query ends with its label (a reference answer), else 0.0; null
                       for a row without a label
    POST /flaky        HTTP 503 on every odd-numbered request, else as /get_reward (retries recover)
    POST /slow         answers after 5 s (a client timeout)
    POST /short        one reward too few (a contract violation)
    POST /auth         HTTP 401 unless the bearer token is "s3cret"
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNT = {"flaky": 0}


def rewards(body: dict) -> list:
    return [None if label is None else float(q.strip().endswith(str(label)))
            for q, label in zip(body["query"], body["labels"], strict=True)]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/flaky":
            COUNT["flaky"] += 1
            if COUNT["flaky"] % 2:
                return self._reply(503, {"error": "busy"})
        if self.path == "/slow":
            time.sleep(5)
        if self.path == "/auth" and self.headers.get("Authorization") != "Bearer s3cret":
            return self._reply(401, {"error": "bad token"})
        out = rewards(body)
        if self.path == "/short":
            out = out[:-1]
        self._reply(200, {"rewards": out, "scores": out, "extra_logs": {}})

    def _reply(self, code: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
