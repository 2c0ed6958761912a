"""The chat-completions request, validated with pydantic, then turned into engine inputs.

Types are strict (a string is not a number); unknown fields are ignored, as OpenAI's clients
send more than a local server needs. Bounds come from `specchat.engine.limits`, the one table
every front end checks against."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from specchat.engine.limits import violation
from specchat.engine.speculative.logprobs import MAX_TOP
from specchat.engine.types import GenerationSettings, Message, ToolCall
from specchat.server.errors import ApiError, bad_request
from specchat.server.structured import grammar_for
from specchat.server.tools import ToolRequest, tool_request

ROLES = ("system", "user", "assistant", "tool")
ALIASES = {"developer": "system"}  # OpenAI's newer name for the system role
# llama.cpp's server takes any number of stop strings; each is looked for after every token,
# so their number is bounded well above what any client sends.
MAX_STOPS = 1024


def _is(*neutral: object) -> Callable[[Any], bool]:
    return lambda value: any(value == n and type(value) is not bool for n in neutral) or (
        value is None
    )


# Fields that change the output and that specchat cannot honour: refused unless they hold their
# neutral value (OpenAI's and llama.cpp's servers' names), never dropped without a word.
UNSUPPORTED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "logit_bias": (lambda v: v in (None, {}, []), "an empty object"),
    "frequency_penalty": (_is(0), "0"),
    "presence_penalty": (_is(0), "0"),
    "repeat_penalty": (_is(1), "1"),
    "repetition_penalty": (_is(1), "1"),
    "mirostat": (_is(0), "0"),
    "typical_p": (_is(1), "1"),
    "tfs_z": (_is(1), "1"),
    "dry_multiplier": (_is(0), "0"),
    "xtc_probability": (_is(0), "0"),
    "top_n_sigma": (_is(-1), "-1"),
    "dynatemp_range": (_is(0), "0"),
    "audio": (lambda v: v is None, "null"),
    "modalities": (lambda v: v in (None, ["text"]), '["text"]'),
    "functions": (lambda v: v is None, "null (use tools)"),
    "function_call": (lambda v: v is None, "null (use tool_choice)"),
    "best_of": (_is(1), "1"),
    "echo": (lambda v: v in (None, False), "false"),
    "n_probs": (_is(0), "0 (use logprobs and top_logprobs)"),
}


class FunctionCall(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCallIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    role: str
    content: Any  # a string, a list of {"type": "text", "text": ...} parts, or null (calls)
    tool_calls: list[ToolCallIn] | None = None  # an assistant message's calls
    tool_call_id: str | None = None  # a tool message: the call it answers
    name: str | None = None

    @model_validator(mode="after")
    def _content_or_calls(self) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if self.content is None and not self.tool_calls:
            raise ValueError("content may be null only in an assistant message with tool_calls")
        return self

    def to_message(self) -> Message:
        calls = tuple(
            ToolCall(c.id, c.function.name, c.function.arguments) for c in self.tool_calls or ()
        )
        return Message(
            self.role,  # type: ignore[arg-type]
            self.content or "",
            tool_calls=calls,
            tool_call_id=self.tool_call_id,
            name=self.name,
        )

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        role = ALIASES.get(role, role)
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        return role

    @field_validator("content")
    @classmethod
    def _text(cls, content: Any) -> str | None:
        if content is None or isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(_text_part(part) for part in content)
        raise ValueError("must be a string, a list of text parts or null")


def _text_part(part: Any) -> str:
    if not isinstance(part, dict):
        raise ValueError("a content part must be an object ({'type': 'text', 'text': ...})")
    if part.get("type") != "text":
        kind = part.get("type")
        raise ValueError(
            f"{kind!r} parts are not supported: the model reads text only "
            "({'type': 'text', 'text': ...})"
            if isinstance(kind, str)
            else "a content part needs a 'type' ('text')"
        )
    text = part.get("text")
    if not isinstance(text, str):
        raise ValueError("a text part's 'text' must be a string")
    return text


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    include_usage: bool = False


class SamplingRequest(BaseModel):
    """The fields every generating endpoint shares."""

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None  # llama.cpp's server takes these two as well
    min_p: float | None = None
    seed: int | None = None
    stop: Any = None  # a string or a list of strings
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    return_tokens: bool = False  # as llama.cpp's server: the reply's token ids, as "tokens"

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: Any) -> tuple[str, ...]:
        if stop is None:
            return ()
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise ValueError("must be a non-empty string or a list of them")
        if len(stops) > MAX_STOPS:
            raise ValueError(f"takes at most {MAX_STOPS} strings (got {len(stops)})")
        return tuple(stops)


class ChatRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None


@dataclass(frozen=True)
class Completion:
    """A checked request, in the engine's terms."""

    messages: tuple[Message, ...]
    tools: ToolRequest | None  # None: no tools, or tool_choice none
    settings: GenerationSettings
    stream: bool
    include_usage: bool
    return_tokens: bool


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def load_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; ApiError(400) for anything else."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise bad_request("the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, a 5000-digit number...
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    if _SURROGATE_ESCAPE.search(raw):  # "\ud800" alone decodes to text UTF-8 cannot hold
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise bad_request("the body holds a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
    return data


def refuse_unsupported(data: dict[str, Any]) -> None:
    """A field that would change the output and that specchat cannot honour is a 400."""
    for name, (neutral, expected) in UNSUPPORTED.items():
        if name in data and not neutral(data[name]):
            raise bad_request(
                f"{name} is not supported by specchat (it would change the output); "
                f"leave it out or set it to {expected}",
                param=name,
                code="unsupported_field",
            )


def parse_request(raw: bytes, defaults: GenerationSettings) -> Completion:
    """Raise ApiError(400) naming the field at fault."""
    data = load_body(raw)
    refuse_unsupported(data)
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc) from None
    if request.n != 1:
        raise bad_request(f"n must be 1: one choice per request (got {request.n})", param="n")
    logprobs = _logprobs(request.logprobs, request.top_logprobs)
    return Completion(
        messages=tuple(m.to_message() for m in request.messages),
        tools=tool_request(data),
        settings=dataclasses.replace(
            settings_for(request, defaults, grammar_for(data)), logprobs=logprobs
        ),
        stream=request.stream,
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
        return_tokens=request.return_tokens,
    )


def _logprobs(wanted: bool, top: int | None) -> int | None:
    """GenerationSettings.logprobs for OpenAI's chat fields (top_logprobs needs logprobs)."""
    if top is not None and not 0 <= top <= MAX_TOP:
        raise bad_request(f"top_logprobs must be in [0, {MAX_TOP}] (got {top})", "top_logprobs")
    if top and not wanted:
        raise bad_request("top_logprobs needs logprobs: true", param="top_logprobs")
    return (top or 0) if wanted else None


def settings_for(
    request: SamplingRequest, defaults: GenerationSettings, grammar: str | None
) -> GenerationSettings:
    """The request's settings over the server's defaults (its command line's generation flags),
    each checked against specchat.engine.limits."""
    given = {
        "temperature": ("temperature", request.temperature),
        "top_p": ("top_p", request.top_p),
        "top_k": ("top_k", request.top_k),
        "min_p": ("min_p", request.min_p),
        "seed": ("seed", request.seed),
        "max_tokens": ("max_tokens", request.max_tokens),
    }
    newer = getattr(request, "max_completion_tokens", None)
    if newer is not None:  # OpenAI's newer name wins
        given["max_tokens"] = ("max_completion_tokens", newer)
    values = {}
    for name, (field, value) in given.items():
        why = violation(name, value)
        if why is not None:
            raise bad_request(f"{field} {why}", param=field)
        if value is not None:
            values[name] = value
    return GenerationSettings(
        temperature=values.get("temperature", defaults.temperature),
        top_k=values.get("top_k", defaults.top_k),
        top_p=values.get("top_p", defaults.top_p),
        min_p=values.get("min_p", defaults.min_p),
        seed=values.get("seed", defaults.seed),
        max_tokens=values.get("max_tokens", defaults.max_tokens),
        stop=request.stop or defaults.stop,
        grammar=grammar,
    )


def first_error(exc: ValidationError) -> ApiError:
    error = exc.errors(include_url=False)[0]
    param = _param(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return bad_request(f"{param}: {message}" if param else message, param=param or None)


def _param(loc: tuple[int | str, ...]) -> str:
    """('messages', 0, 'role') -> 'messages[0].role'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
