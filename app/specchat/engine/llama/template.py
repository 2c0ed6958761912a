"""Chat prompts rendered with the GGUF's own Jinja chat template, in a bounded sandbox.

Templates come from model files downloaded from the internet: they run in Jinja's immutable
sandbox, with the helpers and extensions Hugging Face templates expect (`raise_exception`,
`strftime_now`, `tojson`, `break`/`continue`). Rendering is bounded: every value a template builds
is size-checked (before it is built where it could multiply), loops, calls and output check a
deadline, and any failure becomes one TemplateError naming the model file.

Templates that do not render a system message get the system text at the start of the first user
message, as llama.cpp does (`common/chat.cpp`, `workaround::system_message_not_supported`)."""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, _PassArg
from jinja2.visitor import NodeTransformer

from specchat.engine.types import Message, ToolCall
from specchat.errors import SpecchatError

# Used when a GGUF carries no template (base models): plain ChatML.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

RENDER_SECONDS = 5.0  # a render taking longer is stopped
MIN_VALUE_CHARS = 4 << 20  # the largest string/list a template may build: this, or 4x its input
BUDGET_FACTOR = 8  # all the values built in one render: at most this many largest values
MAX_RANGE = 100_000  # range() items (Jinja's sandbox default)
MAX_INT_BITS = 1 << 16  # integers a template may compute
MAX_JSON_INDENT = 16
SYSTEM_JOIN = "\n"  # llama.cpp's separator between the merged system text and the first message
_PROBE_MARKER = "specchatsystemprobe7f3a"  # letters only: survives trim, title, upper, ...
_PROBE_TOOL = {  # llama.cpp's probe too: a template that supports tools shows the tool's name
    "type": "function",
    "function": {
        "name": "specchattoolprobe7f3a",
        "description": "probe",
        "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
    },
}
_PRINTF_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d*)(?:\.(\d*))?")
_FORMAT_SPECS = re.compile(r"\{[^{}:]*:([^{}]*)\}")


class TemplateError(SpecchatError):
    """The chat template could not be rendered."""


class TemplateLimitError(TemplateError):
    """The chat template went past a limit (time, size) and was stopped."""


class _Stop(Exception):
    """The render went past a limit."""


class _Refused(Exception):
    """The template called raise_exception()."""


def _raise(message: object) -> None:
    raise _Refused(str(message))


def _tojson(
    value: object,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Hugging Face's `tojson` (no HTML escaping, Unicode kept), with a bounded indent."""
    if isinstance(indent, int) and indent > MAX_JSON_INDENT:
        raise _Stop(f"tojson indent {indent} is over {MAX_JSON_INDENT}")
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _size(value: object) -> int:
    if isinstance(value, (str, bytes, list, tuple, dict, range)):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 8
    return 0


@dataclass
class _Limits:
    deadline: float
    max_size: int
    budget: int
    # text sizes of the containers measured in this render: id -> (the container, its size)
    text_sizes: dict[int, tuple[object, int]] = field(default_factory=dict)


_COMPILE_TIME = _Limits(deadline=float("inf"), max_size=MIN_VALUE_CHARS, budget=1 << 62)
_CONTAINERS = (list, tuple, dict, Namespace)
# Filters that take containers without turning them into text; every other filter is given no
# container whose text would pass the limit.
_CONTAINER_FILTERS = frozenset({
    "attr", "batch", "count", "d", "default", "dictsort", "first", "groupby", "items", "last",
    "length", "list", "map", "max", "min", "random", "reject", "rejectattr", "reverse", "select",
    "selectattr", "slice", "sort", "sum", "unique", "_specchat_loop",
})


class _GuardedIter:
    """A for loop's iterable that checks the deadline at every item."""

    def __init__(self, env: _Sandbox, iterable: Iterable[Any]) -> None:
        self._env, self._iterable = env, iterable

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable:
            self._env.tick()
            yield item


class _AddGuards(NodeTransformer):
    """Routes every for loop and every `~` concatenation through a guard filter."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_specchat_loop", [], [], None, None,
                                 lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(items, "_specchat_concat", [], [], None, None, lineno=node.lineno)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with every operation that can build or loop bounded."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
            extensions=["jinja2.ext.loopcontrols"],
            finalize=self._finalize,
        )
        self._local = threading.local()
        self.globals.pop("lipsum", None)
        self.globals["range"] = self._range
        self.globals["raise_exception"] = _raise
        self.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.filters["tojson"] = _tojson
        self.filters = {name: self._guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["_specchat_loop"] = lambda it: _GuardedIter(self, it)
        self.filters["_specchat_concat"] = self._concat

    # --- limits of the render in progress (per thread) ---
    @property
    def limits(self) -> _Limits:
        return getattr(self._local, "limits", None) or _COMPILE_TIME

    def begin(self, limits: _Limits | None) -> None:
        self._local.limits = limits

    def tick(self) -> None:
        if time.monotonic() > self.limits.deadline:
            raise _Stop(f"it ran longer than {RENDER_SECONDS:g} s")

    def expect(self, size: int) -> None:
        """Refuse to build a value of `size` characters/items (checked before building it)."""
        if size > self.limits.max_size:
            raise _Stop(f"it asks for {size} characters or items (limit {self.limits.max_size})")

    def charge(self, value: object) -> object:
        """Counts a value just built against the limits; returns it."""
        size = _size(value)
        self.expect(size)
        self.spend(size)
        return value

    def spend(self, size: int) -> None:
        limits = self.limits
        limits.budget -= size
        if limits.budget < 0:
            raise _Stop("it builds too much text in all")

    def check_args(self, args: Sequence[object], kwargs: dict[str, object]) -> None:
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool):
                self.expect(abs(arg))

    def expect_text(self, *values: object) -> None:
        """Refuse to turn into text a container whose text would pass the limit: a list holding
        one large string many times is small, its str() is not."""
        for value in values:
            if isinstance(value, _CONTAINERS):
                self.expect(self.text_size(value, set()))

    def text_size(self, value: object, active: set[int]) -> int:
        """About the length of str(value) (within a small factor for escapes), stopping as soon
        as it passes the limit."""
        if isinstance(value, str):
            return len(value) + 2
        if isinstance(value, int):
            return value.bit_length() // 3 + 2
        if not isinstance(value, _CONTAINERS):
            return 16
        limits, key = self.limits, id(value)
        if key in limits.text_sizes:
            return limits.text_sizes[key][1]
        if key in active:
            return 8  # a cycle: str() writes "..."
        active.add(key)
        total = 16
        items = _container_items(value)
        for item in items:
            total += self.text_size(item, active) + 2
            if total > limits.max_size:
                raise _Stop(f"it turns into text a value of over {limits.max_size} characters")
        active.discard(key)
        if not isinstance(value, Namespace):  # the only container a template can change
            limits.text_sizes[key] = (value, total)
        return total

    # --- parsing: guards in the syntax tree ---
    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _AddGuards().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree  # type: ignore[no-any-return]

    # --- sandbox hooks ---
    def _range(self, *args: int) -> range:
        self.tick()
        rng = range(*args)
        if len(rng) > MAX_RANGE:
            raise _Stop(f"range of {len(rng)} items (limit {MAX_RANGE})")
        return rng

    def _finalize(self, value: object) -> object:
        self.tick()
        self.expect_text(value)
        return self.charge(value)

    def _concat(self, items: Sequence[object]) -> str:
        self.tick()
        self.expect_text(*items)
        parts = [str(item) for item in items]
        self.expect(sum(map(len, parts)))
        return self.charge("".join(parts))  # type: ignore[return-value]

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.tick()
        if operator == "*":
            _expect_product(self, left, right)
        elif operator == "**":
            _expect_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _expect_printf(self, left, right)
        return self.charge(self.binop_table[operator](left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.tick()
        __self.check_args(args, kwargs)
        args = _expect_method(__self, __obj, args, kwargs)
        return __self.charge(super().call(__context, __obj, *args, **kwargs))

    def _guard_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        skip = 0 if _PassArg.from_obj(func) is None else 1
        check = _FILTER_CHECKS.get(name)

        textual = name not in _CONTAINER_FILTERS

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.tick()
            self.check_args(args[skip + 1:], kwargs)
            if textual:
                self.expect_text(*args[skip:], *kwargs.values())
            if check is not None and len(args) > skip:
                args = (*args[:skip], *check(self, args[skip:], kwargs))
            return self.charge(func(*args, **kwargs))

        return guarded


# --- size estimates of the operations that can multiply their input ---
def _container_items(value: object) -> Iterable[object]:
    if isinstance(value, Namespace):
        value = object.__getattribute__(value, "_Namespace__attrs")
    if isinstance(value, dict):
        return (part for pair in value.items() for part in pair)
    return value  # type: ignore[return-value]


def _expect_product(env: _Sandbox, left: object, right: object) -> None:
    if isinstance(right, (str, list, tuple)):
        left, right = right, left
    if isinstance(left, (str, list, tuple)) and isinstance(right, int):
        env.expect(len(left) * right)
    elif isinstance(left, int) and isinstance(right, int):
        _expect_bits(left.bit_length() + right.bit_length())


def _expect_power(base: object, exponent: object) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        _expect_bits(base.bit_length() * exponent)


def _expect_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise _Stop(f"it computes a {bits}-bit number (limit {MAX_INT_BITS})")


def _expect_printf(env: _Sandbox, fmt: str, args: object) -> None:
    """Widths and precisions in a printf-style format, and the numbers it is given for `*`."""
    widths = [w for pair in _PRINTF_WIDTHS.findall(fmt) for w in pair]
    _expect_widths(env, widths)
    values = args if isinstance(args, tuple) else (args,)
    env.check_args(values, args if isinstance(args, dict) else {})
    env.expect_text(*values)


def _expect_format(env: _Sandbox, fmt: str) -> None:
    """Widths in the specs of a str.format string ("{:>999999999}")."""
    specs = _FORMAT_SPECS.findall(fmt)
    _expect_widths(env, [width for spec in specs for width in re.findall(r"\d+", spec)])


def _expect_widths(env: _Sandbox, widths: list[str]) -> None:
    for width in widths:
        if width and (len(width) > 12 or int(width) > env.limits.max_size):
            raise _Stop(f"a format width of {width} characters")


def _expect_replace(env: _Sandbox, s: object, old: object, new: object, count: object) -> None:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        hits = s.count(old) if old else len(s) + 1
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        env.expect(len(s) + hits * max(0, len(new) - len(old)))


def _expect_join(env: _Sandbox, sep: object, items: Iterable[object]) -> list[object]:
    listed = list(items)
    env.expect(_size(sep) * len(listed))
    active: set[int] = set()
    env.expect(sum(env.text_size(item, active) for item in listed))
    return listed


def _expect_method(
    env: _Sandbox, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Pre-checks of the str methods whose result can be much larger than their input."""
    method = getattr(obj, "__wrapped__", obj)
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return args
    if name == "join" and args:
        return (_expect_join(env, owner, args[0]), *args[1:])
    if name == "replace" and len(args) >= 2:
        _expect_replace(env, owner, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        env.expect(len(owner) + owner.count("\t") * (tab if isinstance(tab, int) else 8))
    elif name in ("format", "format_map"):
        _expect_format(env, owner)
        env.expect_text(*args, *kwargs.values())
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((_size(v) for v in args[0].values()), default=1)
        env.expect(len(owner) * max(1, longest))
    return args


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    """A filter argument given by position (after the value) or by name."""
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _check_join(env: _Sandbox, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
    return (_expect_join(env, _arg(args, kw, 1, "d", ""), args[0]), *args[1:])


def _check_replace(env: _Sandbox, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
    count = _arg(args, kw, 3, "count", None)
    _expect_replace(env, str(args[0]), _arg(args, kw, 1, "old", ""), _arg(args, kw, 2, "new", ""),
                    -1 if count is None else count)
    return args


def _check_indent(env: _Sandbox, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
    width, text = _arg(args, kw, 1, "width", 4), str(args[0])
    pad = width if isinstance(width, int) else _size(width)
    env.expect(len(text) + (text.count("\n") + 1) * pad)
    return args


def _check_wordwrap(env: _Sandbox, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
    width, text = _arg(args, kw, 1, "width", 79), str(args[0])
    wrap = _arg(args, kw, 3, "wrapstring", None) or "\n"
    lines = len(text) // max(1, width if isinstance(width, int) else 1) + text.count("\n") + 1
    env.expect(len(text) + lines * _size(wrap))
    return args


def _check_format(env: _Sandbox, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
    _expect_printf(env, str(args[0]), ())
    return args


def _check_sum(env: _Sandbox, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
    listed = list(args[0])
    total = sum(_size(item) for item in listed)
    env.expect(total)
    env.spend(total * len(listed) // 2)  # adding up sequences copies them again and again
    return (listed, *args[1:])


_FilterCheck = Callable[[_Sandbox, tuple[Any, ...], dict[str, Any]], tuple[Any, ...]]
_FILTER_CHECKS: dict[str, _FilterCheck] = {
    "join": _check_join,
    "replace": _check_replace,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
    "sum": _check_sum,
}


class ChatTemplate:
    def __init__(
        self, source: str, bos_token: str = "", eos_token: str = "", *, name: str = ""
    ) -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.name = name
        self._env = _Sandbox()
        self._supports_system: bool | None = None
        self._supports_tools: bool | None = None
        try:
            self._template = self._env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{self._what} does not parse (line {exc.lineno}): "
                                f"{_describe(exc, kind=False)}") from None
        except Exception as exc:  # anything: the template is a file off the internet
            raise TemplateError(f"{self._what} does not parse: {_describe(exc)}") from None

    @property
    def _what(self) -> str:
        return f"the chat template of {self.name}" if self.name else "the chat template"

    @property
    def supports_system_role(self) -> bool:
        """Whether a system message shows in the prompt (llama.cpp's probe: render a system
        message carrying a marker; a template that raises on it does not support it)."""
        if self._supports_system is None:
            probe = [
                {"role": "system", "content": _PROBE_MARKER},
                {"role": "user", "content": "Hello"},
            ]
            try:
                shown = self._render(probe, True).lower()
                self._supports_system = _PROBE_MARKER in shown
            except TemplateLimitError:
                raise  # the real render would be stopped too
            except TemplateError:
                self._supports_system = False
        return self._supports_system

    @property
    def supports_tools(self) -> bool:
        """Whether tools given to the template show in the prompt (a probe tool's name)."""
        if self._supports_tools is None:
            probe = [{"role": "user", "content": "Hello"}]
            try:
                shown = self._render(probe, True, [_PROBE_TOOL])
                self._supports_tools = _PROBE_TOOL["function"]["name"] in shown  # type: ignore[index]
            except TemplateLimitError:
                raise
            except TemplateError:
                self._supports_tools = False
        return self._supports_tools

    def render(
        self,
        messages: Sequence[Message],
        add_generation_prompt: bool = True,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        """`tools`: OpenAI's function definitions, given to the template as `tools`."""
        dicts = [_message_dict(m) for m in messages]
        if dicts and dicts[0]["role"] == "system" and not self.supports_system_role:
            dicts = _merge_system(dicts)
        return self._render(dicts, add_generation_prompt, list(tools) if tools else None)

    def _render(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        chars = self._input_size(messages, tools)
        max_size = max(MIN_VALUE_CHARS, 4 * chars)
        limits = _Limits(time.monotonic() + RENDER_SECONDS, max_size, BUDGET_FACTOR * max_size)
        self._env.begin(limits)
        try:
            return self._stream(messages, add_generation_prompt, limits, tools)
        except _Stop as exc:
            raise TemplateLimitError(f"{self._what} was stopped: {exc}") from None
        except _Refused as exc:
            raise TemplateError(f"{self._what} refused the conversation: {exc}") from None
        except Exception as exc:  # SecurityError, TypeError, MemoryError, RecursionError, ...
            raise TemplateError(f"{self._what} failed: {_describe(exc)}") from None
        finally:
            self._env.begin(None)

    def _input_size(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> int:
        """Characters the template is given (its limits scale with them)."""
        try:
            calls = [m["tool_calls"] for m in messages if "tool_calls" in m]
            return sum(len(m["content"]) for m in messages) + len(json.dumps([tools, calls]))
        except (RecursionError, ValueError):
            raise TemplateError(f"{self._what} was given tools nested too deeply") from None

    def _stream(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool,
        limits: _Limits,
        tools: list[dict[str, Any]] | None,
    ) -> str:
        parts: list[str] = []
        total = 0
        extra = {"tools": tools} if tools else {}  # templates test `tools is defined`
        chunks = self._template.generate(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            **extra,
        )
        for chunk in chunks:
            total += len(chunk)
            if total > limits.max_size:
                raise _Stop(f"its output passed {limits.max_size} characters")
            self._env.tick()
            parts.append(chunk)
        return "".join(parts)


def _message_dict(message: Message) -> dict[str, Any]:
    """A message as Hugging Face templates read it: tool calls with their arguments as an
    object (what `arguments | tojson` expects), a tool message with its call id and name."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [_call_dict(call) for call in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def _call_dict(call: ToolCall) -> dict[str, Any]:
    try:
        arguments: Any = json.loads(call.arguments)
    except (ValueError, RecursionError):
        arguments = call.arguments  # not JSON: the text as it came
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _merge_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """llama.cpp's fallback: the system text goes before the next message's, joined by "\\n";
    alone, it is dropped."""
    system, rest = messages[0], [dict(m) for m in messages[1:]]
    if rest:
        rest[0]["content"] = system["content"] + SYSTEM_JOIN + rest[0]["content"]
    return rest


def _describe(exc: BaseException, kind: bool = True) -> str:
    """The exception in one short line: its type (if `kind`) and its first 200 characters."""
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:200] + "…"
    name = type(exc).__name__
    if not kind:
        return text or name
    return f"{name}: {text}" if text else name
