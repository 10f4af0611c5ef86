"""A local stand-in for the Hugging Face Hub's upload API, run as its own process by the push test:

    python tests/fake_hub.py PORT STORE_DIR

It answers what `huggingface_hub.HfApi.create_repo` and `upload_folder` call — repo creation,
`preupload` (every file uploaded inline: "regular"), and the NDJSON `commit` — and writes each
committed file under STORE_DIR/<owner>/<name>/, with the repo's settings in STORE_DIR/<owner>/<name>.json.
"""

from __future__ import annotations

import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STORE = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("hub-store")


class Hub(BaseHTTPRequestHandler):
    def _json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        path, body = self.path.split("?")[0], self._body()
        if path == "/api/repos/create":
            req = json.loads(body)
            repo = f"{req.get('organization') or 'me'}/{req['name']}"
            (STORE / repo).parent.mkdir(parents=True, exist_ok=True)
            (STORE / f"{repo}.json").write_text(json.dumps({**req, "auth": self.headers.get("Authorization")}))
            return self._json(200, {"url": f"http://{self.headers['Host']}/{repo}", "name": repo})
        if path == "/api/validate-yaml":  # the card's metadata: parsed as the hub would (YAML mapping)
            import yaml

            text = json.loads(body).get("content", "") if body else ""
            front = text.split("---\n")[1] if text.startswith("---\n") and text.count("---\n") >= 2 else ""
            meta = yaml.safe_load(front)
            ok = isinstance(meta, dict)
            return self._json(200 if ok else 400, {"errors": [] if ok else ["not a mapping"], "warnings": []})
        parts = path.strip("/").split("/")  # api models OWNER NAME (preupload|commit) REVISION
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
            files = json.loads(body)["files"]
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
            repo = STORE / parts[2] / parts[3]
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    v = item["value"]
                    (repo / v["path"]).parent.mkdir(parents=True, exist_ok=True)
                    (repo / v["path"]).write_bytes(base64.b64decode(v["content"]))
            return self._json(200, {"commitUrl": f"http://{self.headers['Host']}/{parts[2]}/{parts[3]}/commit/1",
                                    "commitOid": "1" * 40})
        return self._json(404, {"error": f"not in the fake hub: POST {path}"})

    def do_GET(self) -> None:  # noqa: N802
        return self._json(404, {"error": f"not in the fake hub: GET {self.path}"})


if __name__ == "__main__":
    STORE.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hub)
    print("ready", flush=True)
    server.serve_forever()
