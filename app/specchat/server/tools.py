"""Tool calling: the request's `tools` and `tool_choice`, the reply parsed into OpenAI
`tool_calls`, and the grammar that makes a call certain (`tool_choice` required or named).

The call syntax is the model's own, known from its chat template: Hermes / Qwen2.5 / Qwen3
(`<tool_call>{"name", "arguments"}</tool_call>`), Llama 3.x (`{"name", "parameters"}`, maybe
after `<|python_tag|>`), Mistral (`[TOOL_CALLS][{"name", "arguments"}, ...]`). JSON schemas
become GBNF through llama-cpp-python's port of llama.cpp's converter."""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from specchat.engine.types import TokenEvent, ToolCall
from specchat.server.errors import bad_request
from specchat.server.structured import check_repeats


class Syntax(enum.Enum):
    HERMES = "hermes"  # Hermes 2 Pro, Qwen2.5, Qwen3 and the templates copying them
    LLAMA3 = "llama3"
    MISTRAL = "mistral"


HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
PYTHON_TAG = "<|python_tag|>"
MISTRAL_TAG = "[TOOL_CALLS]"


def syntax_of(template: str) -> Syntax:
    """The call syntax the chat template teaches the model."""
    if MISTRAL_TAG in template:
        return Syntax.MISTRAL
    if HERMES_OPEN in template:
        return Syntax.HERMES
    if PYTHON_TAG in template or '"parameters"' in template or "ipython" in template:
        return Syntax.LLAMA3
    return Syntax.HERMES


@dataclass(frozen=True)
class ToolRequest:
    """A request's tools, checked: None of these when it has no tools or tool_choice none."""

    tools: tuple[dict[str, Any], ...]
    choice: str | None  # "auto", "required", or the one function's name
    parallel: bool

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(tool["function"]["name"] for tool in self.tools)

    @property
    def forced(self) -> bool:
        return self.choice != "auto"


def tool_request(data: dict[str, Any]) -> ToolRequest | None:
    """The request's tools and tool_choice, or a 400 naming what is wrong."""
    tools = data.get("tools")
    choice = data.get("tool_choice")
    parallel = data.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise bad_request("parallel_tool_calls must be true or false", "parallel_tool_calls")
    if tools is None or tools == []:
        if choice not in (None, "none", "auto"):
            raise bad_request("tool_choice needs tools", param="tool_choice")
        return None
    if not isinstance(tools, list):
        raise bad_request("tools must be a list of functions", param="tools")
    names = [_tool_name(tool, i) for i, tool in enumerate(tools)]
    if len(set(names)) != len(names):
        raise bad_request("tools: two functions have the same name", param="tools")
    if choice == "none":
        return None
    return ToolRequest(tuple(tools), _choice(choice, names), parallel)


def _tool_name(tool: Any, i: int) -> str:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(
        function, dict
    ):
        raise bad_request(
            f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}", param="tools"
        )
    name = function.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise bad_request(
            f"tools[{i}].function.name must be 1 to 64 letters, digits, _ . or -", param="tools"
        )
    parameters = function.get("parameters", {})
    if not isinstance(parameters, dict):
        raise bad_request(f"tools[{i}].function.parameters must be a JSON schema", "tools")
    return name


def _choice(choice: Any, names: list[str]) -> str:
    if choice is None or choice in ("auto", "required"):
        return choice or "auto"
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name in names:
            return str(name)
        raise bad_request(f"tool_choice names {name!r}, which is not in tools", "tool_choice")
    raise bad_request(
        "tool_choice must be 'none', 'auto', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}",
        param="tool_choice",
    )


# ---- the grammar of a certain call -------------------------------------------------------------


def call_grammar(request: ToolRequest, syntax: Syntax) -> str:
    """GBNF for a reply that is only calls (one, or several when parallel), each naming one of
    the chosen tools with arguments that follow its parameters' schema."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    key = "parameters" if syntax is Syntax.LLAMA3 else "arguments"
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool["function"]["name"]},
                key: tool["function"].get("parameters") or {"type": "object"},
            },
            "required": ["name", key],
            "additionalProperties": False,
        }
        for tool in request.tools
        if request.choice == "required" or tool["function"]["name"] == request.choice
    ]
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    check_repeats(schema, "tools")
    try:
        call = json_schema_to_gbnf(json.dumps(schema), prop_order=["name", key])
    except Exception as exc:  # the converter's AssertionError, ValueError...
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise bad_request(f"tools: a parameters schema cannot be used ({why})", "tools") from None
    call = re.sub(r"(?m)^root ::=", "tool-call ::=", call)
    if syntax is Syntax.MISTRAL:
        many = '("," tool-call)*' if request.parallel else ""
        return f'root ::= "{_escape(MISTRAL_TAG)}" "[" tool-call {many} "]"\n{call}'
    if syntax is Syntax.HERMES:
        one = f'"{HERMES_OPEN}\\n" tool-call "\\n{HERMES_CLOSE}"'
        separator = '"\\n"'
    else:  # Llama 3.x: bare calls, joined by "; "
        one, separator = "tool-call", '"; "'
    more = f"({separator} one-call)*" if request.parallel else ""
    return f"root ::= one-call {more}\none-call ::= {one}\n{call}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# ---- reading the reply -------------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    content: str | None  # text around the calls (None when there is none)
    calls: tuple[ToolCall, ...]


def parse_reply(text: str, syntax: Syntax, names: Sequence[str]) -> Parsed:
    """The reply's calls to the tools `names`, in the model's syntax; a reply whose calls do not
    parse is plain text (as llama.cpp's server does). Small Hermes-style models (Qwen2.5-Coder)
    often write the call's JSON without its tags: a reply that is only such JSON naming a
    given tool is a call too (llama.cpp's server takes it as well)."""
    found = _find_calls(text, syntax)
    if found is None and syntax is Syntax.HERMES:
        found = _find_calls(text, Syntax.LLAMA3)
    if found is None:
        return Parsed(text, ())
    start, raw_calls = found
    calls = []
    for raw in raw_calls:
        call = _call(raw[0]) if raw else None
        if call is None or call.name not in names:
            return Parsed(text, ())
        calls.append(call)
    content = text[:start].strip()
    return Parsed(content or None, tuple(calls))


def _find_calls(text: str, syntax: Syntax) -> tuple[int, list[Any]] | None:
    """Where the calls start in `text` and their JSON values; None without calls."""
    if syntax is Syntax.HERMES:
        start = text.find(HERMES_OPEN)
        if start < 0:
            return None
        bodies = text[start:].split(HERMES_OPEN)[1:]
        return start, [_json_values(body.split(HERMES_CLOSE)[0])[:1] for body in bodies]
    if syntax is Syntax.MISTRAL:
        start = text.find(MISTRAL_TAG)
        if start < 0:
            return None
        values = _json_values(text[start + len(MISTRAL_TAG) :])
        flat = values[0] if len(values) == 1 and isinstance(values[0], list) else values
        return start, [[value] for value in flat]
    stripped = text.lstrip()
    if stripped.startswith(PYTHON_TAG):
        stripped = stripped[len(PYTHON_TAG) :]
    if not stripped.lstrip().startswith("{"):
        return None
    return len(text) - len(text.lstrip()), [[value] for value in _json_values(stripped, ";")]


_DECODER = json.JSONDecoder()


def _json_values(text: str, separator: str = ",") -> list[Any]:
    """The JSON values `text` holds one after another (separated by blanks or `separator`);
    what follows the last one is left out, a value that does not parse ends the list with
    None (the reply is then plain text)."""
    values: list[Any] = []
    at = 0
    while True:
        while at < len(text) and (text[at].isspace() or text[at] == separator):
            at += 1
        if at >= len(text):
            return values
        try:
            value, at = _DECODER.raw_decode(text, at)
        except (ValueError, RecursionError):
            return values or [None]
        values.append(value)


def _call(raw: Any) -> ToolCall | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    arguments = raw.get("arguments", raw.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return None
    if not isinstance(arguments, dict):
        return None
    text = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", raw["name"], text)


# ---- streaming -------------------------------------------------------------------------------


class ContentGate:
    """While a reply streams, lets through the text that cannot be part of a call: text that
    might begin one is held back until the reply ends (then parse_reply decides)."""

    def __init__(self, syntax: Syntax) -> None:
        self.syntax = syntax
        self.text = ""  # the whole reply so far
        self.sent = 0  # characters of it already let through
        self.calling = False  # a call has begun: nothing more goes out as content

    def feed(self, delta: str) -> str:
        self.text += delta
        if self.calling:
            return ""
        opening = self._opening()
        if opening is not None:
            self.calling = True
            out = self.text[self.sent : max(opening, self.sent)]
        else:
            out = self.text[self.sent : len(self.text) - self._held()]
        self.sent += len(out)
        return out

    def _markers(self) -> tuple[str, ...]:
        if self.syntax is Syntax.HERMES:
            return (HERMES_OPEN,)
        if self.syntax is Syntax.MISTRAL:
            return (MISTRAL_TAG,)
        return (PYTHON_TAG, "{")

    def _opening(self) -> int | None:
        stripped = self.text.lstrip()
        if self.syntax is not Syntax.MISTRAL and stripped.startswith((PYTHON_TAG, "{")):
            return len(self.text) - len(stripped)  # a reply that is only calls, untagged
        if self.syntax is Syntax.LLAMA3:
            return None
        at = min((i for m in self._markers() if (i := self.text.find(m)) >= 0), default=-1)
        return at if at >= 0 else None

    def _held(self) -> int:
        """Characters at the end that may be the start of a marker."""
        if not self.text.strip():
            return len(self.text)  # the reply has not begun: it may begin with a call
        if self.syntax is Syntax.LLAMA3:
            return 0
        tail = 0
        for marker in self._markers():
            for n in range(min(len(marker) - 1, len(self.text)), 0, -1):
                if self.text.endswith(marker[:n]):
                    tail = max(tail, n)
                    break
        return tail


class ReplyShape:
    """How a reply's tokens become OpenAI content and tool calls, as they stream in.

    `control_text` gives the text of a control token (Mistral's [TOOL_CALLS], Llama's
    <|python_tag|>), which the engine's text leaves out; None without tools."""

    def __init__(
        self,
        syntax: Syntax | None,
        control_text: Callable[[int], str],
        names: Sequence[str] = (),
    ) -> None:
        self._gate = ContentGate(syntax) if syntax is not None else None
        self._syntax = syntax
        self._control_text = control_text
        self._names = names  # the tools a call may name

    def content(self, events: Sequence[TokenEvent]) -> str:
        """The content these tokens add that can go out now."""
        text = "".join(self._text(event) for event in events)
        return self._gate.feed(text) if self._gate is not None else text

    def end(self) -> Parsed:
        """The reply's calls, and the content not sent yet (held back while it could have been
        the start of a call)."""
        if self._gate is None or self._syntax is None:
            return Parsed(None, ())
        parsed = parse_reply(self._gate.text, self._syntax, self._names)
        if parsed.calls:
            return parsed
        rest = self._gate.text[self._gate.sent :]
        return Parsed(rest or None, ())

    def _text(self, event: TokenEvent) -> str:
        if self._gate is None or event.text or event.token_id < 0:
            return event.text
        return self._control_text(event.token_id)
