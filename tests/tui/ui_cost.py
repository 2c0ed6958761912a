"""How much CPU the chat app's UI thread spends showing a realistic reply at a realistic rate
(a measurement, not a test: the numbers depend on the machine and its load).

    PYTHONPATH=app python -m tests.tui.ui_cost [--rate 15] [--replies 1] [--profile FILE]

The scripted fake engine streams a ~480-token coding answer (a paragraph, a 40-line Python
block, a bulleted explanation) at --rate tokens/s, one target pass per token (greedy, target
alone: a batch every token or two, the most work per token); it sleeps, it uses no CPU. Prints
the UI (main) thread's CPU seconds for the reply, as a share of one core over the reply's wall
time, and the same for the app sitting idle (timers, cursor blink) for comparison.

Textual's headless driver skips turning screen updates into terminal output; this measurement
does that part too (render_segments), as a terminal would need. --profile writes a cProfile of
the UI thread during the reply (read it with `python -m pstats FILE`)."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import re
import tempfile
import time
from pathlib import Path

from textual._compositor import CompositorUpdate

from specchat.engine.types import Origin
from specchat.store import ChatStore
from specchat.tui import SpecchatApp

from .conftest import ready, send
from .fake_engine import FakeEngine, FakeLoader, Token

CODE = '''\
from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Summary:
    """Totals of one column, grouped by a key column."""

    count: int = 0
    total: float = 0.0
    smallest: float | None = None
    largest: float | None = None

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if self.smallest is None or value < self.smallest:
            self.smallest = value
        if self.largest is None or value > self.largest:
            self.largest = value

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


def summarize(path: Path, key: str, column: str) -> dict[str, Summary]:
    groups: dict[str, Summary] = defaultdict(Summary)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                value = float(row[column])
            except (KeyError, ValueError):
                continue  # skip rows without a number
            groups[row[key]].add(value)
    return dict(groups)
'''

REPLY = (
    "Here is a small, dependency-free way to summarize a CSV file by group. It reads the file "
    "once, streams the rows with `csv.DictReader`, and keeps running totals per key, so it "
    "works on files larger than memory.\n\n"
    f"```python\n{CODE}```\n\n"
    "How it works:\n\n"
    "- `Summary` holds the count, total, smallest and largest value of one group; `mean` is "
    "computed on demand.\n"
    "- `defaultdict(Summary)` creates a group the first time its key is seen.\n"
    "- Rows whose column is missing or not a number are skipped instead of raising.\n"
    "- The result is a plain `dict`, easy to print or to turn into a table.\n"
    '- Call it as `summarize(Path("sales.csv"), "region", "amount")` and print '
    "each group's `mean`.\n"
)


def reply_tokens(text: str = REPLY) -> list[Token]:
    """Word pieces of at most four characters (about a real tokenizer's count), every one a
    target token: greedy decoding with the target alone."""
    pieces = re.findall(r"\s*\S{1,4}|\s+", text)
    return [(piece, Origin.TARGET) for piece in pieces]


def _with_terminal_output(app: SpecchatApp) -> None:
    """Headless apps skip turning updates into terminal output: do it, as a terminal would."""
    display = app._display

    def display_and_render(screen, renderable) -> None:  # type: ignore[no-untyped-def]
        display(screen, renderable)
        if isinstance(renderable, CompositorUpdate) and not app._batch_count:
            renderable.render_segments(app.console)

    app._display = display_and_render  # type: ignore[method-assign]


async def measure(folder: Path, rate: float, profile: cProfile.Profile | None) -> str:
    tokens = reply_tokens()
    engine = FakeEngine(reply=lambda m: tokens, token_delay=1 / rate)
    store = ChatStore(folder / "history.sqlite3")
    app = SpecchatApp(store, FakeLoader(engines={None: engine}), export_dir=folder)
    _with_terminal_output(app)
    gc.collect()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await pilot.pause(1.0)
        idle_cpu, idle_wall = time.thread_time(), time.monotonic()
        await asyncio.sleep(3.0)
        idle_cpu, idle_wall = time.thread_time() - idle_cpu, time.monotonic() - idle_wall
        if profile is not None:
            profile.enable()
        cpu, process, wall = time.thread_time(), time.process_time(), time.monotonic()
        # polled with plain sleeps: Pilot.pause() would make the app refresh the screen
        await send(pilot, "summarize a csv file by group", wait=False)
        deadline = time.monotonic() + len(tokens) / rate * 3 + 30
        while not screen.replies_finished and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        cpu, process = time.thread_time() - cpu, time.process_time() - process
        wall = time.monotonic() - wall
        if profile is not None:
            profile.disable()
    report = screen.last_report
    assert report is not None, "the reply did not finish"
    assert report.tokens == len(tokens), f"{report} after {wall:.1f} s"
    return (
        f"{len(tokens)} tokens at {rate:g} tok/s in {wall:.1f} s: UI thread {cpu:.2f} s CPU "
        f"({cpu / wall:.1%} of a core; process {process:.2f} s), {report.batches} batches, "
        f"max latency {report.max_latency * 1000:.0f} ms; idle {idle_cpu / idle_wall:.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=15.0, help="tokens per second")
    parser.add_argument("--replies", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the UI thread")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    for index in range(args.replies):
        with tempfile.TemporaryDirectory() as folder:
            print(f"reply {index + 1}: {asyncio.run(measure(Path(folder), args.rate, profile))}")
    if profile is not None:
        profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
