"""Every malformed or unsupported body is a 4xx naming the problem (never a 500, nothing dropped
without a word); llama.cpp's /tokenize, /detokenize, /props; CORS; the bounded wait queue (429
with Retry-After) and keep-alive comments on a stream that waits."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.real

HELLO = [{"role": "user", "content": "Hi"}]
ORIGIN = "http://editor.example"
# never complete (right recursion, no end): a reply under it runs until its token limit
ENDLESS = 'root ::= [a-z ] root'


@pytest.fixture(scope="module")
def server(serve, real_models):
    return serve(
        [
            "--target", real_models["smollm2"], "--n-ctx", "2048", "--max-tokens", "4",
            "--max-queue", "1", "--cors-origins", ORIGIN,
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def _nested(depth: int, open_: str, close: str) -> bytes:
    return ('{"messages": ' + open_ * depth + close * depth + "}").encode()


@pytest.mark.parametrize(
    "body, words",
    [
        (_nested(50_000, "[", "]"), "nested too deeply"),
        (_nested(50_000, '{"a":', "}"), "nested too deeply"),
        (b'{"messages": [], "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
        (b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1' + b"0" * 5000
         + b"}", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}', "lone UTF-16 surrogate"),
        (b"", "not valid JSON"),
        (b"null", "JSON object"),
    ],
)
def test_malformed_bodies_are_400(http, body, words):
    assert words in _error(http.post("/v1/chat/completions", content=body), 400)["message"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("logit_bias", {"42": 5}),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -1),
        ("repeat_penalty", 1.1),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("mirostat", 2),
    ],
)
def test_fields_that_would_change_the_output_are_refused_by_name(http, field, value):
    error = _error(http.post("/v1/chat/completions", json={"messages": HELLO, field: value}), 400)
    assert error["param"] == field and error["message"].startswith(f"{field} is not supported")


def test_images_and_n_are_refused_and_neutral_values_accepted(http):
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    error = _error(http.post("/v1/chat/completions", json={"messages": image}), 400)
    assert "'image_url' parts are not supported" in error["message"]
    assert error["param"] == "messages[0].content"
    assert "n must be 1" in _error(
        http.post("/v1/chat/completions", json={"messages": HELLO, "n": 3}), 400
    )["message"]
    neutral = {"logit_bias": {}, "frequency_penalty": 0, "presence_penalty": 0.0, "n": 1}
    reply = http.post("/v1/chat/completions", json={"messages": HELLO, **neutral})
    assert reply.status_code == 200, reply.text


def test_more_than_four_stop_strings(http):
    stops = ["zq1", "zq2", "zq3", "zq4", "zq5", "zq6", "\n"]
    reply = http.post("/v1/chat/completions", json={"messages": HELLO, "stop": stops})
    assert reply.status_code == 200, reply.text


def test_tokenize_detokenize_props(http, server):
    tokens = http.post("/tokenize", json={"content": "Hello world"}).json()["tokens"]
    assert tokens and all(isinstance(t, int) for t in tokens)
    pieces = http.post("/tokenize", json={"content": "Hello world", "with_pieces": True}).json()
    assert "".join(p["piece"] for p in pieces["tokens"]) == "Hello world"
    assert http.post("/detokenize", json={"tokens": tokens}).json() == {"content": "Hello world"}
    bad = _error(http.post("/detokenize", json={"tokens": [10**9]}), 400)
    assert "not a token id" in bad["message"]
    assert _error(http.post("/tokenize", json={"content": 3}), 400)["param"] == "content"
    props = http.get("/props").json()
    assert props["default_generation_settings"]["n_ctx"] == 2048
    assert props["default_generation_settings"]["params"]["n_predict"] == 4
    assert props["total_slots"] == 1 and "im_start" in props["chat_template"]


def test_cors_only_for_the_given_origins(http):
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    allowed = http.options("/v1/chat/completions", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = {**preflight, "Origin": "http://elsewhere.example"}
    assert "access-control-allow-origin" not in http.options("/v1/chat/completions",
                                                             headers=other).headers


def test_a_full_queue_is_429_and_a_waiting_stream_gets_keepalives(http):
    endless = {"messages": HELLO, "grammar": ENDLESS, "max_tokens": 1500, "stream": True}
    waiter_lines: list[str] = []

    def waiter() -> None:  # waits behind the endless reply: keep-alives, then its reply
        body = {"messages": HELLO, "max_tokens": 2, "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            for line in r.iter_lines():
                if line:
                    waiter_lines.append(line)

    with http.stream("POST", "/v1/chat/completions", json=endless) as running:
        lines = running.iter_lines()
        assert next(line for line in lines if '"content":"' in line and '"content":""' not in line)
        thread = threading.Thread(target=waiter)
        thread.start()
        deadline = time.monotonic() + 30
        while http.get("/health").json()["waiting"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        full = http.post("/v1/chat/completions", json={"messages": HELLO})
        error = _error(full, 429)
        assert error["code"] == "queue_full" and int(full.headers["retry-after"]) >= 1
        deadline = time.monotonic() + 30
        while ": keep-alive" not in waiter_lines:  # the running reply holds it past 5 s
            assert time.monotonic() < deadline, waiter_lines
            time.sleep(0.1)
    thread.join(60)  # closing the running stream cancelled it: the waiter's turn came
    first = json.loads(waiter_lines[0].removeprefix("data: "))
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert waiter_lines[1] == ": keep-alive" and waiter_lines[-1] == "data: [DONE]"
    assert http.get("/health").json()["refused_full"] == 1


def test_tools_for_a_template_without_tool_support(http):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    error = _error(
        http.post("/v1/chat/completions", json={"messages": HELLO, "tools": [tool]}), 400
    )
    assert error["code"] == "tools_not_supported" and "has no tool support" in error["message"]
    none = http.post(
        "/v1/chat/completions", json={"messages": HELLO, "tools": [tool], "tool_choice": "none"}
    )
    assert none.status_code == 200, none.text  # no tools reach the template: nothing lost


def test_fill_in_the_middle_needs_fim_tokens(http):
    error = _error(http.post("/infill", json={"input_prefix": "def f(", "input_suffix": ")"}), 400)
    assert error["code"] == "fim_not_supported" and "SmolLM2" in error["message"]
    suffix = http.post("/v1/completions", json={"prompt": "a", "suffix": "b"})
    assert _error(suffix, 400)["param"] == "suffix"
    plain = http.post("/v1/completions", json={"prompt": "Once upon a time"})
    assert plain.status_code == 200 and plain.json()["choices"][0]["text"]


def test_a_negative_max_queue_is_one_line_and_exit_2(capsys, tmp_path):
    from specchat.cli import main

    assert main(["serve", "--max-queue", "-1", "--target", str(tmp_path / "x.gguf")]) == 2
    err = capsys.readouterr().err
    assert "--max-queue must be 0 or more" in err and err.count("\n") == 1
