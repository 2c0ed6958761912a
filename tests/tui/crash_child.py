"""Run the real chat app headless on a history file, streaming a long reply, until killed.

Usage: python crash_child.py HISTORY REPORT FREEZE_AT
Before each batch of a reply reaches the screen, the text the reply box will show is written
to REPORT. After FREEZE_AT batches the UI stops (the engine thread keeps generating) and
REPORT + ".frozen" appears: the test then kills this process with SIGKILL."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for tui.fake_engine

from specchat.store import ChatStore
from specchat.tui import SpecchatApp
from specchat.tui.widgets import MessageBox
from tui.fake_engine import FakeEngine, FakeLoader, scripted

WORDS = " ".join(f"word{i}" for i in range(2000))


def report_what_is_shown(report: Path, freeze_at: int) -> None:
    original = MessageBox.append
    batches = 0

    async def append(self: MessageBox, tokens: Sequence[tuple[str, str]]) -> str:
        nonlocal batches
        report.write_text(self.text + "".join(t for t, _ in tokens))  # before the screen
        text = await original(self, tokens)
        batches += 1
        if batches == freeze_at:
            Path(f"{report}.frozen").touch()
            time.sleep(3600)  # mid-stream, as long as it takes the test to kill us
        return text

    MessageBox.append = append  # type: ignore[method-assign]


async def main(history: Path, report: Path, freeze_at: int) -> None:
    report_what_is_shown(report, freeze_at)
    engine = FakeEngine(reply=lambda m: scripted(WORDS), token_delay=0.002)
    app = SpecchatApp(ChatStore(history), FakeLoader(engines={None: engine}))
    async with app.run_test() as pilot:
        while not any(getattr(s, "engine_state", "") == "ready" for s in app.screen_stack):
            await pilot.pause(0.01)
        prompt = app.screen.query_one("#prompt")
        prompt.text = "write a lot"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
