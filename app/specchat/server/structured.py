"""Structured output: a request's `response_format` (OpenAI), `grammar` or `json_schema`
(llama.cpp's server) as one GBNF grammar for the engine's grammar sampler.

JSON schemas become GBNF through llama-cpp-python's port of llama.cpp's own converter
(`llama_cpp.llama_grammar`), never a converter of ours."""

from __future__ import annotations

import json
from typing import Any

from specchat.server.errors import ApiError, bad_request

FIELDS = ("response_format", "grammar", "json_schema")
# The converter writes a repetition out in full ("x x x ... (x (x)?)?"), and llama.cpp's parser
# then nests it as deep: counts are bounded (a 10**9 minLength would build gigabytes).
MAX_REPEAT = 4096
REPEAT_KEYS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties",
               "maxProperties", "minContains", "maxContains")


def grammar_for(data: dict[str, Any]) -> str | None:
    """The GBNF the reply must follow, None for free text; ApiError(400) naming the field."""
    given = [name for name in FIELDS if data.get(name) is not None]
    if len(given) > 1:
        raise bad_request(f"give one of {', '.join(given)}, not several", param=given[1])
    if not given:
        return None
    name = given[0]
    value = data[name]
    if name == "grammar":
        if not isinstance(value, str) or not value.strip():
            raise bad_request("grammar must be a GBNF grammar (a non-empty string)", "grammar")
        return value
    if name == "json_schema":
        return schema_grammar(value, "json_schema")
    return _response_format(value)


def _response_format(value: Any) -> str | None:
    if not isinstance(value, dict):
        raise bad_request("response_format must be an object", param="response_format")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":  # llama.cpp's server also takes a schema here
        schema = value.get("schema")
        return json_grammar() if schema is None else schema_grammar(schema, "response_format")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise bad_request(
                "response_format.json_schema must be an object with a 'schema' object",
                param="response_format",
            )
        return schema_grammar(spec["schema"], "response_format")
    raise bad_request(
        f"response_format.type must be 'text', 'json_object' or 'json_schema' (got {kind!r})",
        param="response_format",
    )


def json_grammar() -> str:
    """Any JSON object (llama.cpp's grammars/json.gbnf)."""
    from llama_cpp.llama_grammar import JSON_GBNF

    return str(JSON_GBNF)


def schema_grammar(schema: Any, param: str) -> str:
    """GBNF for a JSON schema, or a 400 saying why the converter refused it."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    if not isinstance(schema, dict | bool):
        raise bad_request(f"{param}: the JSON schema must be an object", param=param)
    check_repeats(schema, param)
    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except ApiError:
        raise
    except RecursionError:
        raise bad_request(f"{param}: the JSON schema is nested too deeply", param=param) from None
    except Exception as exc:  # the converter's ValueError, KeyError, TypeError...
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise bad_request(
            f"{param}: the JSON schema cannot be turned into a grammar ({why})", param=param
        ) from None


def check_repeats(schema: Any, param: str) -> None:
    """Refuse repetition counts past MAX_REPEAT anywhere in the schema (walked without
    recursion: the body's nesting is already bounded, this walk needs no stack of its own)."""
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            for key in REPEAT_KEYS:
                count = node.get(key)
                if isinstance(count, int | float) and count > MAX_REPEAT:
                    raise bad_request(
                        f"{param}: {key} {count} is more than the {MAX_REPEAT} repetitions a "
                        "grammar can spell out",
                        param=param,
                    )
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
