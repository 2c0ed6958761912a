"""Text completion and fill-in-the-middle with Qwen2.5-Coder-0.5B (its FIM tokens) drafting from
the prompt (--lookup): OpenAI's /v1/completions through the official client (suffix, stream,
logprobs), llama.cpp's /completion and /infill (input_extra, the n_predict 0 warm-up), and
logprobs for chat: the target's own log-probabilities at every token, drafted ones included."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

pytestmark = pytest.mark.real

PREFIX = "def add(a, b):\n"
SUFFIX = "\n\nprint(add(2, 3))\n"


@pytest.fixture(scope="module")
def server(serve, real_models):
    return serve(
        ["--target", real_models["qwen"], "--lookup", "--n-ctx", "2048", "--max-tokens", "24"]
    )


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=300) as c:
        yield c


def test_v1_completions_fills_a_gap_streamed_and_not(client):
    reply = client.completions.create(
        model="any", prompt=PREFIX, suffix=SUFFIX, max_tokens=16, temperature=0
    )
    filled = reply.choices[0].text
    assert filled.startswith("    return a + b") or filled.startswith("return a + b"), filled
    chunks = client.completions.create(
        model="any", prompt=PREFIX, suffix=SUFFIX, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    parts = list(chunks)
    assert "".join(c.choices[0].text for c in parts if c.choices) == filled
    assert parts[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_v1_completions_plain_prompt_and_logprobs(client):
    reply = client.completions.create(
        model="any", prompt="# Python: print the numbers 1 to 3\nfor i in range(1, 4):\n",
        max_tokens=16, temperature=0, logprobs=2,
    )  # fmt: skip
    logprobs = reply.choices[0].logprobs
    assert len(logprobs.tokens) == reply.usage.completion_tokens
    assert "".join(logprobs.tokens).startswith(reply.choices[0].text[:10])
    for lp, top in zip(logprobs.token_logprobs, logprobs.top_logprobs, strict=True):
        assert len(top) == 2 and lp <= 0
        assert lp == pytest.approx(max(top.values()))  # greedy picks the target's top token


def test_chat_logprobs_at_drafted_tokens_too(client):
    """The reply repeats the prompt's text, so most tokens are drafted (and accepted): each has
    the target's log-probability, and greedy's pick is the target's top token."""
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    reply = client.chat.completions.create(
        model="any",
        messages=[{"role": "user", "content": f"Repeat exactly: {text}"}],
        temperature=0, max_tokens=24, logprobs=True, top_logprobs=3,
    )  # fmt: skip
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    assert reply.model_extra["specchat"]["accepted"] > 0  # some tokens were drafted
    assert "".join(c.token for c in content) == reply.choices[0].message.content
    for entry in content:
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)


def test_infill_with_extra_files_and_the_warm_up(http):
    body = {
        "input_prefix": "from util import double\n\ndef quadruple(x):\n",
        "input_suffix": "\n",
        "input_extra": [{"filename": "util.py", "text": "def double(x):\n    return 2 * x\n"}],
        "temperature": 0,
        "n_predict": 12,
    }
    warm = http.post("/infill", json={**body, "n_predict": 0})
    assert warm.status_code == 200, warm.text
    assert warm.json()["content"] == "" and warm.json()["tokens_evaluated"] > 20
    filled = http.post("/infill", json=body).json()
    assert filled["content"].lstrip().startswith("return") and filled["stop"] is True
    assert filled["timings"]["cache_n"] > 20  # the warm-up put the prompt in the cache


def test_llama_completion_streamed(http):
    body = {"prompt": "The capital of France is", "n_predict": 6, "temperature": 0,
            "stream": True}
    with http.stream("POST", "/completion", json=body) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert all(e["stop"] is False for e in events[:-1]) and events[-1]["stop"] is True
    text = "".join(e["content"] for e in events[:-1])
    assert text and events[-1]["tokens_predicted"] == sum(len(e["tokens"]) for e in events[:-1])


@pytest.mark.parametrize(
    "path, body, param, words",
    [
        ("/v1/completions", {}, "prompt", "must be a string"),
        ("/v1/completions", {"prompt": [1, "a"]}, "prompt", "must be a string"),
        ("/v1/completions", {"prompt": [10**9]}, "prompt", "not a token id"),
        ("/v1/completions", {"prompt": "x", "logprobs": 9}, "logprobs", "[0, 5]"),
        ("/v1/completions", {"prompt": "x", "echo": True}, "echo", "not supported"),
        ("/v1/completions", {"prompt": "x", "best_of": 3}, "best_of", "not supported"),
        ("/infill", {"input_prefix": "a", "input_extra": [{"text": 3}]}, "input_extra",
         "input_extra[0]"),
        ("/completion", {"prompt": "x", "n_predict": -5}, "n_predict", "-1, 0 or more"),
        ("/completion", {"prompt": "x", "n_probs": 3}, "n_probs", "not supported"),
    ],
)
def test_bad_completion_requests(http, path, body, param, words):
    response = http.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"], error
