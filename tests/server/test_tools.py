"""Tool calling through the official `openai` client against a real server with
Qwen2.5-Coder-0.5B (its own chat template, Hermes-style `<tool_call>`), drafting from the
conversation: a forced call with valid arguments, the tool's result sent back, a text answer;
streamed and not; named and none choices; bad tool requests are 400s naming the field."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

pytestmark = pytest.mark.real

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}
ASK = [
    {"role": "system", "content": "You are a helpful assistant. Use the tools."},
    {"role": "user", "content": "What is the weather like in Paris right now?"},
]


@pytest.fixture(scope="module")
def server(serve, real_models):
    return serve(
        ["--target", real_models["qwen"], "--lookup", "--n-ctx", "4096", "--max-tokens", "120"]
    )


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def _answer_with_result(client: openai.OpenAI, call, stream: bool) -> str:
    """The tool's result goes back (assistant message with tool_calls and null content, then a
    tool message); the model answers in text."""
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "name": call.function.name,
         "content": json.dumps({"temperature": 18, "sky": "sunny"})},
    ]
    if not stream:
        reply = client.chat.completions.create(
            model="any", messages=messages, tools=[WEATHER], temperature=0
        )
        choice = reply.choices[0]
        assert choice.finish_reason in ("stop", "length") and not choice.message.tool_calls
        return choice.message.content or ""
    chunks = client.chat.completions.create(
        model="any", messages=messages, tools=[WEATHER], temperature=0, stream=True
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_tool_round_trip(client):
    reply = client.chat.completions.create(
        model="any", messages=ASK, tools=[WEATHER, TIME], tool_choice="required", temperature=0
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.id
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str) and arguments["unit"] in ("celsius", "fahrenheit")
    answer = _answer_with_result(client, call, stream=False)
    assert "18" in answer or "sunny" in answer.lower(), answer


def test_tool_round_trip_streamed(client):
    chunks = list(
        client.chat.completions.create(
            model="any", messages=ASK, tools=[WEATHER, TIME], tool_choice="required",
            temperature=0, stream=True,
        )
    )  # fmt: skip
    calls: dict[int, dict] = {}
    for c in chunks:
        for delta in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            entry = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = delta.id or entry["id"]
            if delta.function is not None:
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    first = calls[0]
    assert first["name"] == "get_weather" and "city" in json.loads(first["arguments"])
    call = openai.types.chat.ChatCompletionMessageToolCall(
        id=first["id"], type="function",
        function={"name": first["name"], "arguments": first["arguments"]},
    )  # fmt: skip
    answer = _answer_with_result(client, call, stream=True)
    assert "18" in answer or "sunny" in answer.lower(), answer


def test_auto_named_and_none(client):
    auto = client.chat.completions.create(model="any", messages=ASK, tools=[WEATHER],
                                          temperature=0)
    assert auto.choices[0].message.tool_calls[0].function.name == "get_weather"
    named = client.chat.completions.create(
        model="any", messages=ASK, tools=[WEATHER, TIME], temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )  # fmt: skip
    assert [c.function.name for c in named.choices[0].message.tool_calls] == ["get_time"]
    none = client.chat.completions.create(
        model="any", messages=ASK, tools=[WEATHER], tool_choice="none", temperature=0
    )
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content
    assert none.choices[0].finish_reason != "tool_calls"


@pytest.mark.parametrize(
    "extra, param, words",
    [
        ({"tools": {"type": "function"}}, "tools", "must be a list"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools",
         "letters, digits"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
         "tool_choice", "not in tools"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice", "must be 'none'"),
        ({"tool_choice": "required"}, "tool_choice", "needs tools"),
        ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type":
          "json_object"}}, "tool_choice", "cannot be combined"),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0]", "may be null only"),
    ],
)
def test_bad_tool_requests(server, extra, param, words):
    body = {"messages": ASK, **extra}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"], error


def _deep_tool(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return {"type": "function", "function": {"name": "deep", "parameters": schema}}


@pytest.mark.parametrize("choice", ["auto", "required"])
def test_deeply_nested_tools_are_a_400(server, choice):
    """400 levels: the body parses; the schema converter gives up (required), or the rendered
    tools do not fit the context (auto): one-line 400s, never a failure of the server."""
    body = {"messages": ASK, "tools": [_deep_tool(400)], "tool_choice": choice}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 400, response.text
    error = response.json()["error"]["message"]
    assert "\n" not in error and ("tools" in error or "context holds" in error), error
