"""`specchat serve` through the official `openai` client: replies, streaming, usage, the stats
object, greedy identity with `specchat ask`, prompt-cache reuse, two clients, a dropped client."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest

from specchat.cli import main
from specchat.engine.types import STATS_NAMES

pytestmark = pytest.mark.real

N_CTX = "1024"
HELLO = [{"role": "user", "content": "Name three colors."}]


@pytest.fixture(scope="module")
def pair_flags(real_models, derived_models) -> list[str]:
    """A same-vocabulary pair with a fixed draft length, so every reply drafts."""
    return [
        "--target", str(real_models["smollm2"]),
        "--draft", str(derived_models["smollm2-q4_0"]),
        "--draft-max", "4", "--no-adaptive", "--n-ctx", N_CTX, "--threads", "1",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def server(serve, pair_flags):
    return serve([*pair_flags, "--max-tokens", "16"])


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _extra(obj) -> dict:
    return obj.model_extra or {}


def test_reply_usage_and_stats(client):
    reply = client.chat.completions.create(model="any", messages=HELLO, max_tokens=12)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    stats, timings = _extra(reply)["specchat"], _extra(reply)["timings"]
    assert list(stats)[: len(STATS_NAMES)] == list(STATS_NAMES)
    usage = reply.usage
    assert usage.completion_tokens == stats["generated_tokens"] > 0
    assert usage.prompt_tokens == stats["prompt_tokens"] > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert stats["drafted"] > 0 and stats["mode"] == "model"
    assert timings["draft_n"] == stats["drafted"]
    assert timings["draft_n_accepted"] == stats["accepted"]
    assert timings["predicted_n"] == usage.completion_tokens
    assert timings["prompt_n"] + timings["cache_n"] == usage.prompt_tokens


def test_greedy_reply_equals_ask_token_for_token(client, pair_flags, capsys):
    prompt = "Write one sentence about the sea."
    assert main(["ask", *pair_flags, "--max-tokens", "24", "--json", prompt]) == 0
    asked = json.loads(capsys.readouterr().out)
    messages = [{"role": "user", "content": prompt}]
    reply = client.chat.completions.create(
        model="any",
        messages=messages,
        max_tokens=24,
        temperature=0,
        extra_body={"return_tokens": True},
    )
    assert _extra(reply)["tokens"] == asked["token_ids"]
    assert reply.choices[0].message.content == asked["text"]
    streamed = client.chat.completions.create(
        model="any", messages=messages, max_tokens=24, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == asked["text"]


def test_stream_chunks_finish_and_usage(client):
    chunks = list(
        client.chat.completions.create(
            model="any",
            messages=HELLO,
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason in ("stop", "length")
    stats = _extra(finish[0])["specchat"]
    assert _extra(finish[0])["timings"]["draft_n"] == stats["drafted"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == stats["generated_tokens"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and len(chunks) >= 3


def test_next_turn_reuses_the_cached_prefix(client):
    first = client.chat.completions.create(model="any", messages=HELLO, max_tokens=8)
    turn = [
        *HELLO,
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And three animals?"},
    ]
    second = client.chat.completions.create(model="any", messages=turn, max_tokens=8)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= first.usage.prompt_tokens - 1  # only the new turn is evaluated
    assert _extra(second)["timings"]["cache_n"] == cached
    assert _extra(second)["specchat"]["cached_prompt_tokens"] == cached


def test_stop_strings_and_seeded_sampling(client):
    text = client.chat.completions.create(model="any", messages=HELLO, max_tokens=12).choices[0]
    text = text.message.content
    assert len(text) > 8
    stop = text[5:8]
    stopped = client.chat.completions.create(model="any", messages=HELLO, max_tokens=12, stop=stop)
    assert stopped.choices[0].message.content == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    sampled = [
        client.chat.completions.create(
            model="any", messages=HELLO, max_tokens=8, temperature=1.0, seed=7
        )
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]


def _stream_text(client: openai.OpenAI, content: str) -> str:
    chunks = client.chat.completions.create(
        model="any", messages=[{"role": "user", "content": content}], max_tokens=12, stream=True
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_two_clients_at_once(server):
    prompts = ["Name a fruit.", "Name a country."]
    alone = {p: _stream_text(_client(server), p) for p in prompts}
    together: dict[str, str] = {}

    def run(prompt: str) -> None:
        together[prompt] = _stream_text(_client(server), prompt)

    threads = [threading.Thread(target=run, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert together == alone and all(alone.values())


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def test_dropped_client_is_cancelled_and_the_next_is_served(server, client):
    before = httpx.get(f"{server.url}/health").json()
    stream = client.chat.completions.create(
        model="any",
        messages=[{"role": "user", "content": "Count from 1 to 500, separated by commas."}],
        max_tokens=800,
        stream=True,
    )
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()  # the client goes away mid-reply
    reply = client.chat.completions.create(model="any", messages=HELLO, max_tokens=4)
    assert reply.choices[0].message.content
    after = httpx.get(f"{server.url}/health").json()
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["served"] == before["served"] + 2


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list()] == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


def test_sigterm_ends_the_stream_with_an_error_and_frees_the_models(serve, real_models):
    server = serve(["--target", real_models["smollm2"], "--n-ctx", N_CTX])
    client = _client(server)
    stream = client.chat.completions.create(
        model="any",
        messages=[{"role": "user", "content": "Count from 1 to 500, separated by commas."}],
        max_tokens=800,
        stream=True,
    )
    with pytest.raises(openai.APIError, match="shutting down"):
        for i, _ in enumerate(stream):
            if i == 2:
                server.proc.terminate()
    server.stop()
    assert "models freed" in server.text()
