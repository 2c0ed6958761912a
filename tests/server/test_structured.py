"""Structured output through the official `openai` client against a real server with
Qwen2.5-Coder-0.5B drafting from the conversation (--lookup): `response_format` json_schema with
the client's own `.parse()`, json_object, llama.cpp's `grammar` and `json_schema` fields; a
schema or grammar that cannot be used is a 400 naming the problem."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from pydantic import BaseModel

pytestmark = pytest.mark.real


class City(BaseModel):
    name: str
    country: str
    population: int


@pytest.fixture(scope="module")
def server(serve, real_models):
    return serve(
        ["--target", real_models["qwen"], "--lookup", "--n-ctx", "2048", "--max-tokens", "80"]
    )


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=300) as c:
        yield c


def test_json_schema_with_the_clients_parse(client):
    completion = client.chat.completions.parse(
        model="any",
        messages=[{"role": "user", "content": "Give me a large city in Japan."}],
        response_format=City,
        temperature=0,
    )
    city = completion.choices[0].message.parsed
    assert isinstance(city, City) and city.name and city.population >= 0


def test_json_object(client):
    reply = client.chat.completions.create(
        model="any",
        messages=[{"role": "user", "content": "List two fruits."}],
        response_format={"type": "json_object"},
        temperature=0,
    )
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_llama_cpp_grammar_and_json_schema_fields(client):
    yes_no = client.chat.completions.create(
        model="any",
        messages=[{"role": "user", "content": "Is water wet? Answer at length."}],
        extra_body={"grammar": 'root ::= "yes" | "no"'},
    )
    assert yes_no.choices[0].message.content in ("yes", "no")
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}
    pair = client.chat.completions.create(
        model="any",
        messages=[{"role": "user", "content": "Two prime numbers please."}],
        extra_body={"json_schema": schema},
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in pair if chunk.choices)
    value = json.loads(text)
    assert len(value) == 2 and all(isinstance(v, int) for v in value)


@pytest.mark.parametrize(
    "extra, param, words",
    [
        ({"grammar": 'root ::= "a" missing'}, "grammar", "Undefined rule identifier 'missing'"),
        ({"grammar": "root ::= ("}, "grammar", "grammar: llama.cpp's GBNF parser refused it"),
        ({"grammar": ""}, "grammar", "non-empty"),
        ({"json_schema": {"type": "frobnicate"}}, "json_schema", "Unrecognized schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         "response_format", "'schema' object"),
        ({"response_format": {"type": "yaml"}}, "response_format", "'yaml'"),
        ({"response_format": {"type": "json_object"}, "grammar": "root ::= \"a\""}, "grammar",
         "not several"),
        ({"json_schema": {"$ref": "#/defs/x"}}, "json_schema", "cannot be turned into a grammar"),
        ({"json_schema": {"type": "string", "minLength": 10**9}}, "json_schema",
         "minLength 1000000000 is more than the 4096 repetitions"),
        ({"json_schema": {"type": "string", "maxLength": 4096}}, "grammar",
         "exceeds sane defaults"),  # llama.cpp's parser's own limit, in its words
    ],
)
def test_unusable_schemas_and_grammars_are_400(http, extra, param, words):
    body = {"messages": [{"role": "user", "content": "Hi"}], **extra}
    for stream in (False, True):
        response = http.post("/v1/chat/completions", json={**body, "stream": stream})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert words in error["message"] and "\n" not in error["message"]
        assert error["param"] == param
