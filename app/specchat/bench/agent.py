"""`specchat bench --prompt-set agent`: a scripted coding-agent session replayed through the API,
target alone vs the drafter chain, prompt time counted.

The session is what agents send: a system prompt with tools, a task, the model's call to read a
file, the tool's result (a ~150-line source file), the edit (the whole new file in a code block,
Aider's "whole file" format: mostly a copy of the tool result), the call to run the tests, their
result, the model's final answer. Every request resends the whole conversation; the calls are
forced with tool_choice, as agent harnesses do for a step they require; greedy replies of both
modes are compared token for token.

Each mode serves the session from an in-process `specchat serve` app on a loopback port: the
numbers include the HTTP, template and prompt work an agent pays for."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from specchat.engine.types import DraftMode, GenerationSettings, SpecSettings
from specchat.errors import SpecchatError

FILE_NAME = "units.py"
TOOLS = [
    {"type": "function", "function": {
        "name": "read_file", "description": "Read a text file of the project.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                       "required": ["path"]}}},
    {"type": "function", "function": {
        "name": "run_tests", "description": "Run the project's tests.",
        "parameters": {"type": "object", "properties": {}}}},
]  # fmt: skip
SYSTEM = (
    "You are a coding agent working in the user's repository. Read a file with read_file before "
    "you change it. To change a file, reply with its whole new content in one ```python block "
    "(the harness writes it to disk), keeping every line you do not need to change exactly as "
    "it is."
)
TASK = (
    f"In {FILE_NAME}, rename the parameter `value` to `amount` in every function (and in its "
    "body). Change nothing else."
)
EDIT = f"Now reply with the whole updated {FILE_NAME} in one ```python block (no tool call)."
AFTER_EDIT = "Saved. Now run the tests."
TEST_RESULT = "21 passed in 0.12s"
# (name, factor, offset, unit from, unit to): the conversions the source file defines
CONVERSIONS = [
    ("celsius_to_fahrenheit", "9 / 5", "32", "degrees Celsius", "degrees Fahrenheit"),
    ("fahrenheit_to_celsius", "5 / 9", "-32 * 5 / 9", "degrees Fahrenheit", "degrees Celsius"),
    ("meters_to_feet", "3.28084", "0", "meters", "feet"),
    ("feet_to_meters", "0.3048", "0", "feet", "meters"),
    ("kilograms_to_pounds", "2.20462", "0", "kilograms", "pounds"),
    ("pounds_to_kilograms", "0.453592", "0", "pounds", "kilograms"),
    ("liters_to_gallons", "0.264172", "0", "liters", "US gallons"),
    ("gallons_to_liters", "3.78541", "0", "US gallons", "liters"),
    ("kilometers_to_miles", "0.621371", "0", "kilometers", "miles"),
    ("miles_to_kilometers", "1.60934", "0", "miles", "kilometers"),
    ("joules_to_calories", "0.239006", "0", "joules", "calories"),
    ("calories_to_joules", "4.184", "0", "calories", "joules"),
    ("pascals_to_psi", "0.000145038", "0", "pascals", "pounds per square inch"),
    ("psi_to_pascals", "6894.76", "0", "pounds per square inch", "pascals"),
    ("watts_to_horsepower", "0.00134102", "0", "watts", "horsepower"),
    ("horsepower_to_watts", "745.7", "0", "horsepower", "watts"),
    ("hectares_to_acres", "2.47105", "0", "hectares", "acres"),
    ("acres_to_hectares", "0.404686", "0", "acres", "hectares"),
    ("knots_to_kilometers_per_hour", "1.852", "0", "knots", "kilometers per hour"),
    ("inches_to_centimeters", "2.54", "0", "inches", "centimeters"),
    ("bytes_to_kibibytes", "1 / 1024", "0", "bytes", "kibibytes"),
]


def source_file(functions: int = len(CONVERSIONS)) -> str:
    """The file the agent edits: a unit-conversion module (~8 lines per function)."""
    lines = ['"""Unit conversions used by the report generator."""', "", "from __future__ import "
             "annotations", "", ""]
    for name, factor, offset, src, dst in CONVERSIONS[:functions]:
        shift = f" + {offset}" if offset != "0" else ""
        lines += [
            f"def {name}(value: float) -> float:",
            f'    """Convert {src} to {dst}."""',
            "    if value != value:  # NaN stays NaN",
            "        return value",
            f"    return value * {factor}{shift}",
            "",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


@dataclass
class Turn:
    seconds: float  # the request's wall time, prompt included
    prompt_tokens: int
    cached_tokens: int
    generated: int
    drafted: int
    accepted: int
    reply: str  # the assistant message as JSON (content and tool calls, ids left out)
    history_accepted: int = 0  # of accepted, copied from earlier requests (SuffixHistory)
    generation_ms: float = 0.0  # from the first generated token's pass to the end


@dataclass
class Session:
    mode: str
    turns: list[Turn] = field(default_factory=list)
    # a drafting mode: what a verification pass over n tokens cost, in one-token passes, as the
    # engine measured it during the session (its cost model's line through the widths)
    pass_ratio: dict[int, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.turns)

    @property
    def generated(self) -> int:
        return sum(t.generated for t in self.turns)


def run_agent_bench(
    engine: Any, label: str, modes: list[tuple[str, SpecSettings]], max_tokens: int,
    functions: int = len(CONVERSIONS),
) -> list[Session]:
    """The session once per mode on the same loaded engine (speculative settings switched
    between them, the KV cache emptied before each: every mode reads its prompts itself).
    A drafting mode has the server's index of earlier requests (SuffixHistory), empty at its
    start: it copies from this session's requests only, never from another mode's. The
    engine is freed at the end."""
    from specchat.engine.speculative.suffix import HISTORY_TOKENS, SuffixHistory
    from specchat.server import ServerConfig, create_app

    defaults = GenerationSettings(max_tokens=max_tokens)
    app = create_app(engine, ServerConfig(model=label, defaults=defaults))
    sessions = []
    with _serving(app) as url:
        for name, spec in modes:
            engine.set_spec(spec)
            engine.reset_cache()
            drafting = spec.mode is not DraftMode.NONE
            engine.use_suffix_history(SuffixHistory(HISTORY_TOKENS) if drafting else None)
            session = _session(url, name, functions)
            costs = getattr(engine, "costs", None)
            if drafting and costs is not None and costs.ratio:
                session.pass_ratio = {
                    n: costs.verify_ratio(n, smooth=True) for n in range(2, _widest(spec) + 1)
                }
            sessions.append(session)
    return sessions


def _widest(spec: SpecSettings) -> int:
    """The widest verification pass the mode may make: the last token and its longest draft."""
    if spec.mode is DraftMode.LOOKUP:
        return spec.suffix_max + 1
    return max(spec.suffix_max, spec.draft_max) + 1


def default_modes(spec: SpecSettings) -> list[tuple[str, SpecSettings]]:
    """Target alone, then the drafter chain the command line chose (a draft model after the
    suffix drafter, or the suffix drafter alone with --lookup / no draft)."""
    alone = SpecSettings(mode=DraftMode.NONE)
    # (no draft model: the suffix drafter alone, with the limits the command line gave it)
    chain = spec if spec.mode is not DraftMode.NONE else replace(spec, mode=DraftMode.LOOKUP)
    return [("target alone", alone), (f"chain ({chain.mode.value})", chain)]


def _session(url: str, mode: str, functions: int) -> Session:
    """read_file (forced) -> the file; the edit; run_tests (forced) -> passed; the answer."""
    session = Session(mode)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": TASK},
    ]
    steps: list[tuple[str | None, str | None, str | None]] = [  # (forced call, result, then)
        ("read_file", source_file(functions), EDIT),
        (None, None, AFTER_EDIT),
        ("run_tests", TEST_RESULT, None),
        (None, None, None),
    ]
    for forced, result, then in steps:
        body: dict[str, Any] = {"messages": messages, "tools": TOOLS, "temperature": 0}
        if forced is not None:
            body["tool_choice"] = {"type": "function", "function": {"name": forced}}
        message, turn = _request(url, body)
        session.turns.append(turn)
        messages.append(message)
        for call in message.get("tool_calls") or []:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        if then is not None:
            messages.append({"role": "user", "content": then})
    return session


def _request(url: str, body: dict[str, Any]) -> tuple[dict[str, Any], Turn]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data, {"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:
            reply = json.load(response)
    except urllib.error.HTTPError as exc:  # the server refused: say why, in one line
        error = json.load(exc).get("error", {})
        raise SpecchatError(f"agent bench: the server answered {exc.code}: "
                            f"{error.get('message', exc.reason)}") from None
    seconds = time.perf_counter() - start
    message = reply["choices"][0]["message"]
    stats = reply["specchat"]
    shown = {"content": message.get("content"), "calls": [
        c["function"] for c in message.get("tool_calls") or []]}
    turn = Turn(seconds, stats["prompt_tokens"], stats["cached_prompt_tokens"],
                stats["generated_tokens"], stats["drafted"], stats["accepted"], json.dumps(shown),
                stats.get("history_accepted", 0), stats.get("generation_ms", 0.0))
    return message, turn


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[str]:
    """The app on a free loopback port, in a thread, for the block's duration."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    # lifespan on: stopping the server stops the app's worker thread (and frees the engine)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SpecchatError("agent bench: the in-process server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _replies(session: Session) -> list[tuple[str, int]]:
    """What must match token for token: each reply, and how many tokens it took (a parsed tool
    call hides text the model wrote after it)."""
    return [(t.reply, t.generated) for t in session.turns]


def ceiling(base: Session, chain: Session) -> tuple[float, int] | None:
    """The speedup no drafter could beat on this machine, in the target alone's own timings:
    each request's fixed part (prompt, first token, HTTP) as it was, and every later token
    drafted and accepted, in passes of the one width whose cost per token the chain measured
    lowest (a pass over n tokens costs its measured multiple of the same request's one-token
    pass). Noise that slows the whole target-alone run slows its ceiling alike.
    (speedup, best width), or None without the measurements."""
    if not chain.pass_ratio or len(base.turns) != len(chain.turns):
        return None
    fixed_s = sum(t.seconds - t.generation_ms / 1000 for t in base.turns)
    # per request: the tokens after the first, and what one of them cost the target alone
    tokens = [(n, t.generation_ms / 1000 / n if n else 0.0)
              for t in base.turns for n in [max(t.generated - 1, 0)]]

    def seconds_at(width: int) -> float:
        return fixed_s + sum(math.ceil(n / width) * chain.pass_ratio[width] * one_s
                             for n, one_s in tokens)

    width = min(chain.pass_ratio, key=seconds_at)
    seconds = seconds_at(width)
    return (base.seconds / seconds, width) if seconds > 0 else None


def report(sessions: list[Session]) -> dict[str, Any]:
    """Per mode: wall time (prompt time included), tokens, acceptance, the speedup over the
    first mode (target alone), whether every reply equals its reply, and for a drafting mode
    the ceiling its measured pass costs put on any drafter (`ceiling`)."""
    base = sessions[0]
    out = []
    for s in sessions:
        drafted = sum(t.drafted for t in s.turns)
        bound = ceiling(base, s) if s is not base else None
        out.append({
            "mode": s.mode,
            "seconds": round(s.seconds, 2),
            "generated_tokens": s.generated,
            "prompt_tokens": sum(t.prompt_tokens - t.cached_tokens for t in s.turns),
            "tokens_per_second": round(s.generated / s.seconds, 2) if s.seconds else 0.0,
            "acceptance_rate": round(sum(t.accepted for t in s.turns) / drafted, 3)
            if drafted else 0.0,
            "accepted_from_history": sum(t.history_accepted for t in s.turns),
            "speedup": round(base.seconds / s.seconds, 2) if s.seconds else 0.0,
            "identical": _replies(s) == _replies(base),
            "turn_seconds": [round(t.seconds, 2) for t in s.turns],
            "ceiling": round(bound[0], 2) if bound else None,
            "ceiling_width": bound[1] if bound else None,
        })  # fmt: skip
    return {"sessions": out}
