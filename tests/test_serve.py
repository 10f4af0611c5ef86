"""`llm-recipe serve` as a real process on loopback, called with the official `openai` client and
with plain HTTP: chat (streaming and not), completions, batching of concurrent requests, a client
that disconnects mid-stream, the API key, and every bad request as a 4xx in OpenAI's error shape."""

import json
import threading
import time

import httpx
import openai
import pytest
from serve_helpers import ServeProcess, chat_model_dir

from llm_recipe.config import SamplingConfig
from llm_recipe.infer.decoder import DecodeRow, decode
from llm_recipe.infer.generate import chat_prompt_ids, generate_chat
from llm_recipe.infer.sampling import sample
from llm_recipe.models.loading import load_causal_lm, load_tokenizer
from llm_recipe.tokenizer.chat_formats import resolve_chat_format

KEY = "sk-serve-test-0c41d9e2a7"
AUTH = {"Authorization": f"Bearer {KEY}"}
HELLO = [{"role": "user", "content": "What is the capital of Japan?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tokenizer_dir):
    model = chat_model_dir(tmp_path_factory.mktemp("serve_model") / "model", tokenizer_dir)
    # the recipe's serve.sampling: the defaults a request without its own fields gets
    with ServeProcess(model, "--api-key-env", "SERVE_KEY", "--set", "serve.sampling.max_new_tokens=7",
                      "--set", "serve.sampling.temperature=0", "--set", "serve.batch_wait_ms=300",
                      "--set", "serve.max_body_kb=8", env={"SERVE_KEY": KEY}) as s:
        s.model_dir = model
        yield s


@pytest.fixture()
def client(server):
    with openai.OpenAI(base_url=server.base + "/v1", api_key=KEY, max_retries=0, timeout=60) as c:
        yield c


def test_rows_with_their_own_settings_in_one_batch_sample_as_alone(tmp_path, tokenizer_dir):
    """The server's decoder = the project's sampler, row by row: same seeds, same tokens, whatever
    the other rows of the batch ask for."""
    model_dir = chat_model_dir(tmp_path / "m", tokenizer_dir)
    model, tok = load_causal_lm(model_dir).eval(), load_tokenizer(model_dir)
    prompts = [tok(t)["input_ids"] for t in ("The capital of Japan", "猫は", "Once upon a time there was")]
    settings = [SamplingConfig(max_new_tokens=9, temperature=0.9, top_k=40),
                SamplingConfig(max_new_tokens=5, temperature=0.0, repetition_penalty=1.3),
                SamplingConfig(max_new_tokens=12, temperature=1.2, top_p=0.8, stop=["e"])]
    rows = [DecodeRow(p, sp, seed=7, stop_ids=[tok.eos_token_id], tokenizer=tok) for p, sp in zip(prompts, settings, strict=True)]
    steps = []
    decode(model, rows, tok.pad_token_id, lambda: steps.append(1))
    for p, sp, r in zip(prompts, settings, rows, strict=True):
        alone = sample(model, tok, [p], sp, seed=7, stop_token_ids=[tok.eos_token_id])[0]
        assert (r.text, r.ids) == (alone.text, alone.token_ids)
        assert r.finish == {"stop_token": "stop", "stop_string": "stop", "length": "length"}[alone.finish_reason]
    assert len(steps) == max(len(r.ids) + (r.finish == "stop") for r in rows)


def test_openai_client_chat_stream_and_completions(server, client):
    assert [m.id for m in client.models.list()] == ["tiny"]
    r = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, temperature=0, extra_body={"ignore_eos": True})
    tok = load_tokenizer(server.model_dir)
    prompt_len = len(chat_prompt_ids(tok, resolve_chat_format(tok), [HELLO])[0])
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.role == "assistant"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (prompt_len, 12, prompt_len + 12)
    # the model's own chat template and the project's generation: the answer `generate --chat` gives
    model = load_causal_lm(server.model_dir)
    mine = generate_chat(model, tok, [HELLO], SamplingConfig(max_new_tokens=12, temperature=0.0))[0]
    plain = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, temperature=0)
    assert plain.choices[0].message.content == mine.text
    # streamed: the same greedy text, piece by piece, then the usage chunk
    chunks = list(client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True},
                                                 extra_body={"ignore_eos": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2 and "".join(pieces) == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == 12 and chunks[-2].choices[0].finish_reason == "length"
    # the recipe's defaults (max 7 tokens) apply when the request sets nothing; n choices with a seed
    d = client.chat.completions.create(model="tiny", messages=HELLO, n=3, temperature=1.0, seed=5,
                                       extra_body={"ignore_eos": True})
    assert [c.index for c in d.choices] == [0, 1, 2] and d.usage.completion_tokens == 21
    again = client.chat.completions.create(model="tiny", messages=HELLO, n=3, temperature=1.0, seed=5,
                                           extra_body={"ignore_eos": True})
    assert [c.message.content for c in again.choices] == [c.message.content for c in d.choices]  # seeded
    assert len({c.message.content for c in d.choices}) > 1  # ... and the choices are different samples
    comp = client.completions.create(model="tiny", prompt=["The capital of", "東京は"], max_tokens=5, temperature=0,
                                     extra_body={"ignore_eos": True})
    assert len(comp.choices) == 2 and comp.usage.completion_tokens == 10
    full = comp.choices[0].text
    cut = full[2:4]
    stop = client.completions.create(model="tiny", prompt="The capital of", max_tokens=5, temperature=0,
                                     stop=[cut], extra_body={"ignore_eos": True})
    assert stop.choices[0].finish_reason == "stop" and stop.choices[0].text == full[:full.find(cut)]


def test_plain_http_server_sent_events(server):
    body = {"model": "tiny", "prompt": "Hello", "max_tokens": 6, "temperature": 0, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", server.base + "/v1/completions", json=body, headers=AUTH, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [ln for ln in r.iter_lines() if ln]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    assert payloads[-1]["choices"][0]["finish_reason"] == "length"
    plain = httpx.post(server.base + "/v1/completions", json={**body, "stream": False}, headers=AUTH, timeout=60).json()
    assert "".join(p["choices"][0]["text"] for p in payloads) == plain["choices"][0]["text"]


def test_concurrent_requests_are_generated_as_one_batch(server, client):
    prompts = [f"Question {i}: what is {i} + {i}?" for i in range(6)]
    alone = [client.completions.create(model="tiny", prompt=p, max_tokens=8, temperature=0,
                                       extra_body={"ignore_eos": True}).choices[0].text for p in prompts[:2]]
    before = server.metrics(AUTH)
    start, out = threading.Barrier(len(prompts)), [None] * len(prompts)

    def ask(i):
        start.wait()
        out[i] = client.completions.create(model="tiny", prompt=prompts[i], max_tokens=8, temperature=0,
                                           extra_body={"ignore_eos": True}).choices[0].text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    after = server.metrics(AUTH)
    batches = after["llm_recipe_batches_total"] - before["llm_recipe_batches_total"]
    rows = after["llm_recipe_batch_rows_total"] - before["llm_recipe_batch_rows_total"]
    assert rows == 6 and batches < 6, (batches, rows)  # some requests shared a batch
    assert out[:2] == alone  # batching (left padding) does not change a greedy answer


def test_a_client_that_disconnects_mid_stream_stops_its_generation(server):
    before = server.metrics(AUTH)
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 1500, "stream": True, "ignore_eos": True}
    with httpx.Client(timeout=60) as c, c.stream("POST", server.base + "/v1/chat/completions", json=body,
                                                 headers=AUTH) as r:
        got = 0
        for line in r.iter_lines():
            got += line.startswith("data: ")
            if got == 4:
                break  # leave mid-stream: the connection closes here
    deadline = time.monotonic() + 60
    while server.metrics(AUTH)["llm_recipe_cancelled_rows_total"] == before["llm_recipe_cancelled_rows_total"]:
        assert time.monotonic() < deadline, "the server kept generating for a client that left"
        time.sleep(0.2)
    after = server.metrics(AUTH)
    assert after["llm_recipe_generation_tokens_total"] - before["llm_recipe_generation_tokens_total"] < 1500
    # still healthy: the next request is answered
    ok = httpx.post(server.base + "/v1/chat/completions", json={"model": "tiny", "messages": HELLO, "max_tokens": 3},
                    headers=AUTH, timeout=60)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] is not None


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


def test_bad_requests_are_openai_errors(server):
    url = server.base + "/v1/chat/completions"
    good = {"model": "tiny", "messages": HELLO, "max_tokens": 2}
    post = lambda **kw: httpx.post(url, timeout=30, **kw)  # noqa: E731
    assert _error(post(json=good), 401)["code"] == "invalid_api_key"  # no key
    assert _error(post(json=good, headers={"Authorization": "Bearer wrong"}), 401)["code"] == "invalid_api_key"
    assert httpx.get(server.base + "/health", timeout=10).status_code == 200  # the one open path
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.base + "/v1", api_key="wrong", max_retries=0).models.list()
    assert "not valid JSON" in _error(post(content=b'{"model": "tiny", "messages": [', headers=AUTH), 400)["message"]
    assert _error(post(json=[1, 2], headers=AUTH), 400)["message"] == "the request body must be a JSON object"
    assert _error(post(json={**good, "model": "gpt-4"}, headers=AUTH), 404)["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=server.base + "/v1", api_key=KEY, max_retries=0).chat.completions.create(
            model="gpt-4", messages=HELLO)
    big = {**good, "messages": [{"role": "user", "content": "x" * 9000}]}
    assert _error(post(json=big, headers=AUTH), 413)["message"].startswith("request body of")
    chunked = post(content=iter([json.dumps(big).encode()[i:i + 1000] for i in range(0, 9100, 1000)]), headers=AUTH)
    assert "over this server's limit" in _error(chunked, 413)["message"]  # no Content-Length: counted as read
    assert _error(post(json={**good, "temperature": 7}, headers=AUTH), 400)["param"] == "temperature"
    assert _error(post(json={**good, "messages": []}, headers=AUTH), 400)["param"] == "messages"
    assert _error(post(json={**good, "max_tokens": 100000}, headers=AUTH), 400)["param"] == "max_tokens"
    assert _error(post(json={**good, "n": 50}, headers=AUTH), 400)["param"] == "n"
    assert _error(post(json={**good, "tools": [{"type": "function"}]}, headers=AUTH), 400)["param"] == "tools"
    assert _error(post(json={**good, "stop": ["a", "b", "c", "d", "e"]}, headers=AUTH), 400)["param"] == "stop"
    long_prompt = {"model": "tiny", "prompt": "x " * 3000, "max_tokens": 20}  # over 2048 tokens, under 8 KB
    assert _error(httpx.post(server.base + "/v1/completions", json=long_prompt, headers=AUTH, timeout=30),
                  400)["code"] == "context_length_exceeded"
    assert _error(httpx.get(server.base + "/v1/nothing", headers=AUTH, timeout=10), 404)["type"] == "not_found_error"
    assert KEY not in server.output()  # the key is never printed or logged
