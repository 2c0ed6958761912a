"""How well the chat app keeps up with a 500 tokens/s reply, in wall-clock time (a measurement,
not a test: the numbers depend on the machine and its load).

    PYTHONPATH=app python -m tests.tui.stream_bench [--replies N]

Prints, per reply: how long the fake engine took with the app attached and alone (the app must
not slow decoding down), how long after the last token the display caught up, the batches and
their latency from first token to display (LATE_SECONDS counts as late)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
from pathlib import Path

from specchat.engine.types import GenerationSettings, Message
from specchat.store import ChatStore
from specchat.tui import SpecchatApp
from specchat.tui.conversation import LATE_SECONDS

from .conftest import ready, send
from .fake_engine import FakeEngine, FakeLoader, scripted
from .test_speed import PARAGRAPH, TOKENS


async def one_reply(folder: Path) -> str:
    tokens = scripted(PARAGRAPH * 30)[:TOKENS]
    engine = FakeEngine(reply=lambda m: tokens, token_delay=1 / 500)
    alone = FakeEngine(reply=lambda m: tokens, token_delay=1 / 500)
    list(alone.chat([Message("user", "stream fast")], GenerationSettings()))  # no UI
    store = ChatStore(folder / "history.sqlite3")
    app = SpecchatApp(store, FakeLoader(engines={None: engine}), export_dir=folder)
    gc.collect()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        started = time.monotonic()
        await send(pilot, "stream fast", timeout=300)
        shown_after = time.monotonic() - started
    report = screen.last_report
    assert report is not None
    late = sum(1 for lag in report.latencies if lag > LATE_SECONDS)
    decoding = engine.durations[-1]
    return (
        f"decoding {decoding:.2f} s (alone {alone.durations[-1]:.2f} s), shown "
        f"{shown_after - decoding:.2f} s after the last token; {report.batches} batches, "
        f"{late} late, max latency {report.max_latency:.2f} s; "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=3)
    args = parser.parse_args()
    for index in range(args.replies):
        with tempfile.TemporaryDirectory() as folder:
            print(f"reply {index + 1}: {asyncio.run(one_reply(Path(folder)))}")


if __name__ == "__main__":
    main()
