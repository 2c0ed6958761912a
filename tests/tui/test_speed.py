"""A long fast reply reaches the screen in batches, in order and complete, and what the engine
has produced is shown without waiting for more tokens. Deterministic: the fake engine stops
after each group of tokens until the test has seen the group on screen. (How fast the display
keeps up in wall-clock time is measured by tests/tui/stream_bench.py, not asserted here.)"""

from __future__ import annotations

from specchat.tui.screens.main import MainScreen
from specchat.tui.widgets import MessageBox

from .conftest import ready, send, wait_for
from .fake_engine import FakeEngine, scripted

PARAGRAPH = (
    "Speculative decoding lets a small draft model propose tokens that the target verifies "
    "in one pass, so the **answer** is unchanged but arrives sooner.\n\n"
    "```python\ndef add(a, b):\n    return a + b\n```\n\n"
)
TOKENS, GROUP = 500, 50


async def test_each_group_of_tokens_is_shown_before_the_next_is_made(make_app) -> None:
    tokens = scripted(PARAGRAPH * 30)[:TOKENS]
    engine = FakeEngine(reply=lambda m: tokens, hold_every=GROUP)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "stream fast", wait=False)
        for end in range(GROUP, TOKENS, GROUP):
            shown = "".join(t for t, _ in tokens[:end])
            # the engine waits: these tokens reach the screen on their own, none beyond them
            await wait_for(pilot, lambda shown=shown: _reply_text(screen) == shown)
            engine.proceed.release()
        await wait_for(pilot, lambda: screen.replies_finished == 1)
        report = screen.last_report
        assert report is not None and report.tokens == TOKENS
        assert report.missing_batches == 0  # every batch arrived, in order
        assert report.batches >= TOKENS // GROUP  # at least one batch per group: progressive
        assert _reply_text(screen) == "".join(t for t, _ in tokens)  # nothing dropped


def _reply_text(screen: MainScreen) -> str:
    boxes = screen.query(MessageBox)
    return boxes.last().text if len(boxes) > 1 else ""
