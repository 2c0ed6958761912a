"""Benchmark prompts: built-in sets and the user's own JSONL file."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from specchat.engine.types import Message
from specchat.errors import SpecchatError

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class BenchPrompt:
    name: str
    messages: tuple[Message, ...]
    # A multi-turn chat: after each reply, the reply and the next of these user messages are
    # appended and the engine answers again (its prompt cache reuses the turns before).
    followups: tuple[str, ...] = ()


_ARTICLE = (
    "The lighthouse at Korsvik was built in 1871 on a granite skerry two kilometres off the coast. "
    "Its first keeper, Anders Holm, kept a log of every ship that passed, the weather at dawn and "
    "dusk, and the amount of paraffin burned each night. In 1903 the paraffin lamp was replaced by "
    "a pressurised kerosene burner that tripled the light's range to twenty-two nautical miles. "
    "The station was electrified in 1952 with a diesel generator, and a submarine cable from the "
    "mainland followed in 1968. Automation came in 1987: the last keeper, Greta Lind, left the "
    "skerry on the ninth of September, and since then the light has been monitored from a control "
    "room in the harbour town. The tower is twenty-four metres tall, painted red with one white "
    "band, and its lens, a first-order Fresnel lens made in Paris, weighs almost four tonnes. "
    "Every spring a volunteer association repaints the keeper's house and the boathouse, and in "
    "July the station opens to visitors, who come by a small ferry that runs twice a day when the "
    "sea allows. The keepers' logs, one hundred and sixteen volumes in all, are kept in the county "
    "archive; they record three shipwrecks near the skerry, the worst in the storm of November "
    "1899, when the schooner Elida ran aground and the keeper rowed out twice to bring her crew of "
    "seven to safety. Seabirds nest on the skerry's northern side, and since 1994 ornithologists "
    "have counted eider, razorbills and black guillemots there each June. "
    "The keeper's house has four rooms on two floors. The ground floor held the kitchen, with a "
    "cast-iron stove that burned driftwood and coal brought out by the supply boat every second "
    "week, and the workshop, where the keepers trimmed wicks, polished brass and mended the "
    "fog bell's striking gear. Upstairs were two bedrooms, one for the keeper and his family and "
    "one for the assistant keeper, a post that existed from 1871 to 1931. A cistern under the "
    "house collected rainwater from the roof; in dry summers water had to be shipped in barrels. "
    "The fog bell was replaced in 1921 by a compressed-air horn, which sounded two blasts every "
    "thirty seconds in poor visibility and could be heard, the logs claim, in the harbour town on "
    "still nights. The horn was silenced in 1995 after a satellite navigation survey found that "
    "no vessel had relied on it for years. Today the keeper's house holds a small exhibition on "
    "the history of the station: the original paraffin lamp, a set of signal flags, the "
    "assistant keeper's uniform, photographs from the 1920s, and a copy of the logbook page from "
    "the night of the Elida rescue, written in a steady hand despite the storm."
)

_ROUGH_TEXT = (
    "our team have finished the migration of the billing service to the new database last week. "
    "the old servers will be turn off on friday, so please make sure that any report you still "
    "need is exported before then. if you see any error in the new invoices, write to the billing "
    "channel and include the invoice number, the customer name and what you expected to see."
)

_CODE = '''import csv
import sys


def load_rows(path):
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append(row)
    print(f"loaded {len(rows)} rows from {path}")
    return rows


def total_by_customer(rows):
    totals = {}
    for row in rows:
        name = row["customer"]
        amount = float(row["amount"])
        totals[name] = totals.get(name, 0.0) + amount
    return totals


def top_customers(totals, n):
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    print(f"ranking {len(ranked)} customers")
    return ranked[:n]


def main(argv):
    if len(argv) < 2:
        print("usage: report.py FILE [N]")
        return 2
    rows = load_rows(argv[1])
    n = int(argv[2]) if len(argv) > 2 else 10
    for name, total in top_customers(total_by_customer(rows), n):
        print(f"{name:30} {total:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''

_WHOLE = "Reply with the whole updated file in one Python code block and nothing else."

# Code edits whose reply repeats most of the prompt (what suffix drafting is for).
_EDITS = (
    ("rename", f"Rename the function total_by_customer to sum_by_customer everywhere in this "
               f"file. {_WHOLE}\n\n```python\n{_CODE}```"),
    ("hints", f"Add type hints to every function in this file. {_WHOLE}\n\n```python\n"
              f"{_CODE}```"),
    ("logging", f"Replace every print call in this file with logging (a module-level logger). "
                f"{_WHOLE}\n\n```python\n{_CODE}```"),
)

# A chat of successive edits of the same code (one scenario, three turns).
_EDIT_CHAT = (
    f"Rename the function load_rows to read_rows everywhere in this file. {_WHOLE}\n\n"
    f"```python\n{_CODE}```",
    f"Now add a docstring to top_customers. {_WHOLE}",
    f"Now make top_customers's n default to 5. {_WHOLE}",
)

BUILTIN: dict[str, tuple[tuple[str, str], ...]] = {
    "chat": (
        ("explain", "Explain in a few sentences why the sky is blue."),
        ("list", "Give me five tips for sleeping better, as a short numbered list."),
        ("story", "Write a short story about a robot who learns to paint."),
    ),
    "code": (
        ("fizzbuzz", "Write a Python function fizzbuzz(n) that returns the FizzBuzz list up to n."),
        ("reverse", "Write a Python function that reverses a singly linked list, with comments."),
        ("sql", "Write an SQL query that returns the ten customers with the highest total orders."),
    ),
    "rewrite": (
        ("grammar", f"Rewrite this text with correct grammar and capitalisation:\n\n{_ROUGH_TEXT}"),
        ("formal",
         f"Repeat the following text, replacing 'please' with 'kindly':\n\n{_ROUGH_TEXT}"),
    ),
    "long-context": (
        ("summary", f"{_ARTICLE}\n\nSummarise the history of the lighthouse in three sentences."),
        ("question", f"{_ARTICLE}\n\nWho was the last keeper, and when did she leave?"),
    ),
    "edit": _EDITS,
}
# Multi-turn sets: name -> (scenario, user messages in order).
CHATS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "edit-chat": (("3-turns", _EDIT_CHAT),),
}
SET_NAMES = (*BUILTIN, *CHATS)


def builtin_set(name: str, system: str | None = None) -> list[BenchPrompt]:
    if name in CHATS:
        return [
            replace(_make(f"{name}/{key}", turns[0], system), followups=turns[1:])
            for key, turns in CHATS[name]
        ]
    if name not in BUILTIN:
        raise SpecchatError(f"unknown prompt set {name!r} (choose from {', '.join(SET_NAMES)})")
    return [_make(f"{name}/{key}", text, system) for key, text in BUILTIN[name]]


def _make(name: str, text: str, system: str | None) -> BenchPrompt:
    messages = [Message("system", system)] if system else []
    return BenchPrompt(name, (*messages, Message("user", text)))


def load_prompt_file(path: Path, system: str | None = None) -> list[BenchPrompt]:
    """Read JSONL: one object per line, {"prompt": "..."} or {"messages": [{"role", "content"}]},
    with an optional "name" and "system". Blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SpecchatError(f"{path}: no such prompt file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecchatError(f"{path}: cannot read prompt file ({exc})") from None
    prompts = []
    for no, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            default_name = f"{path.stem}/{len(prompts) + 1}"
            prompts.append(_parse_line(line, f"{path}:{no}", default_name, system))
    if not prompts:
        raise SpecchatError(f"{path}: no prompts in file")
    return prompts


def _parse_line(line: str, where: str, default_name: str, system: str | None) -> BenchPrompt:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SpecchatError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise SpecchatError(f"{where}: expected a JSON object")
    name = obj.get("name", default_name)
    sys_text = obj.get("system", system)
    if not isinstance(name, str) or (sys_text is not None and not isinstance(sys_text, str)):
        raise SpecchatError(f"{where}: 'name' and 'system' must be strings")
    if "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise SpecchatError(f"{where}: 'prompt' must be a non-empty string")
        return _make(name, obj["prompt"], sys_text)
    raw = obj.get("messages")
    if not isinstance(raw, list) or not raw:
        raise SpecchatError(f"{where}: needs 'prompt' (a string) or 'messages' (a list)")
    messages = [Message("system", sys_text)] if sys_text else []
    for m in raw:
        ok = isinstance(m, dict) and m.get("role") in _ROLES
        if not (ok and isinstance(m.get("content"), str)):
            raise SpecchatError(
                f"{where}: each message needs 'role' (system/user/assistant) and 'content' (string)"
            )
        messages.append(Message(m["role"], m["content"]))
    if messages[-1].role != "user":
        raise SpecchatError(f"{where}: the last message must be from the user")
    return BenchPrompt(name, tuple(messages))
