"""Bad requests get an OpenAI-style error object naming the field, and the server keeps
serving; the API key; bad command lines end as one line with exit code 2."""

from __future__ import annotations

import json
import socket

import httpx
import openai
import pytest

from specchat.cli import main

pytestmark = pytest.mark.real

KEY = "test-key-123"
HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def server(serve, real_models):
    """smollm2 alone, a small context, a key from the environment."""
    return serve(
        ["--target", real_models["smollm2"], "--n-ctx", "256", "--max-tokens", "4"],
        env={"SPECCHAT_API_KEY": KEY},
    )


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    ) as c:
        yield c


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_the_api_key_is_required(server, http):
    no_key = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": HELLO})
    assert "API key" in _error(no_key, 401)["message"]
    wrong = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.chat.completions.create(model="any", messages=HELLO)
    assert info.value.status_code == 401
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # no key needed
    right = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120)
    assert right.chat.completions.create(model="any", messages=HELLO).choices[0].message.content


def test_malformed_json(http):
    error = _error(http.post("/v1/chat/completions", content=b'{"messages": ['), 400)
    assert "not valid JSON" in error["message"]
    assert "JSON object" in _error(http.post("/v1/chat/completions", json=[1]), 400)["message"]


@pytest.mark.parametrize(
    "body, param, words",
    [
        ({"messages": HELLO, "temperature": "hot"}, "temperature", "valid number"),
        ({"messages": HELLO, "max_tokens": 1.5}, "max_tokens", "valid integer"),
        ({"messages": HELLO, "stream": "yes"}, "stream", "valid boolean"),
        ({"messages": "Hi"}, "messages", "valid list"),
        ({"messages": []}, "messages", "at least 1"),
        ({}, "messages", "Field required"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "Field required"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content", "string"),
        ({"messages": HELLO, "stop": [1]}, "stop", "string"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role", "unknown role"),
        ({"messages": [*HELLO, {"role": "robot", "content": "x"}]}, "messages[1].role", "robot"),
    ],
)
def test_wrong_types_and_unknown_roles(http, body, param, words):
    error = _error(http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == param and words in error["message"]


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("temperature", 11, "must be in [0, 10]"),
        ("top_p", 0, "must be in (0, 1]"),
        ("min_p", 1, "must be in [0, 1)"),
        ("top_k", -1, "must be in [0,"),
        ("max_tokens", 0, "must be in [1,"),
        ("max_completion_tokens", 0, "must be in [1,"),
        ("seed", -1, "must be in [0,"),
        ("n", 2, "must be 1"),
    ],
)
def test_values_out_of_range(http, field, value, words):
    error = _error(http.post("/v1/chat/completions", json={"messages": HELLO, field: value}), 400)
    assert error["param"] == field and words in error["message"]
    assert error["message"].startswith(field)


def test_a_prompt_longer_than_the_context(http):
    long = [{"role": "user", "content": "apple " * 400}]
    error = _error(http.post("/v1/chat/completions", json={"messages": long}), 400)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "context holds 256" in error["message"]
    stream = http.post("/v1/chat/completions", json={"messages": long, "stream": True})
    assert _error(stream, 400)["code"] == "context_length_exceeded"
    older = [*long, {"role": "assistant", "content": "Apples."}, *HELLO]  # the old turn goes
    reply = http.post("/v1/chat/completions", json={"messages": older})
    assert reply.status_code == 200 and reply.json()["specchat"]["dropped_turns"] == 2


def test_oversized_bodies_are_refused_before_being_read(http):
    big = json.dumps({"messages": [{"role": "user", "content": "x" * (2 << 20)}]}).encode()
    error = _error(http.post("/v1/chat/completions", content=big), 413)
    assert "larger than" in error["message"]

    def chunked():  # no Content-Length: counted while it streams in
        for _ in range(200):
            yield b"x" * 16384

    assert _error(http.post("/v1/chat/completions", content=chunked()), 413)["code"]


def test_the_server_keeps_serving_after_bad_requests(http):
    reply = http.post("/v1/chat/completions", json={"messages": HELLO, "max_tokens": 3})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    assert http.get("/nope").status_code == 404
    assert "error" in http.get("/nope").json()


def test_bad_command_lines_are_one_line_and_exit_2(capsys, tmp_path):
    assert main(["serve", "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["serve", "--port", port, "--target", str(tmp_path / "x.gguf")]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and err.count("\n") == 1
    assert main(["serve", "--temperature", "-1", "--target", str(tmp_path / "x.gguf")]) == 2
    assert "--temperature" in capsys.readouterr().err


def test_binding_beyond_loopback_without_a_key_warns(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SPECCHAT_API_KEY", raising=False)
    missing = str(tmp_path / "missing.gguf")
    assert main(["serve", "--host", "0.0.0.0", "--port", "0", "--target", missing]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "warning: serving on 0.0.0.0 without an API key" in err[0]
    assert err[1].startswith("specchat: error:") and len(err) == 2
    assert main(["serve", "--port", "0", "--target", missing]) == 2
    assert "warning" not in capsys.readouterr().err
