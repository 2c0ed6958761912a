"""Snapshots of origin colouring with a chained engine: tokens copied from the conversation
(suffix drafter), drafted by the draft model and the target's own, each in its own style, with
the legend and the per-drafter acceptance in the reply's stats.

Update after an intended UI change:
pytest tests/tui/test_snapshots_origins.py --snapshot-update"""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Collapsible

from specchat.tui.widgets import MessageBox

from .conftest import main_screen, ready, send
from .fake_engine import FakeEngine, chained

SIZE = (110, 34)
PROMPT = "Rename add to total: def add(a, b): return a + b"
# model drafts, a run copied from the prompt (" b): return a +") and the target's own words
REPLY = (
    "Here is the function renamed: def total(a, b): return a + b and every caller now"
    " uses total instead of add, for example total(2, 3) returns 5."
)
ROUNDS = (("model", 3), ("model", 2), ("suffix", 4), ("model", 3), ("model", 2), ("model", 3))


async def steady(pilot: Pilot) -> None:
    """No blinking cursor in snapshots (it would be caught on or off at random)."""
    main_screen(pilot.app).query_one("#prompt").cursor_blink = False  # type: ignore[arg-type]
    await pilot.pause()


def chained_engine() -> FakeEngine:
    return FakeEngine(reply=lambda m: chained(REPLY, ROUNDS))


def test_three_origins_coloured_with_per_drafter_stats(snap_compare, make_app) -> None:
    async def before(pilot: Pilot) -> None:
        screen = await ready(pilot)
        await send(pilot, PROMPT)
        await pilot.press("ctrl+o")
        screen.query(MessageBox).last().query_one(Collapsible).collapsed = False
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(make_app(chained_engine()), terminal_size=SIZE, run_before=before)


def test_three_origins_coloured_light_theme(snap_compare, make_app) -> None:
    async def before(pilot: Pilot) -> None:
        pilot.app.theme = "textual-light"
        await ready(pilot)
        await send(pilot, PROMPT)
        await pilot.press("ctrl+o")
        await steady(pilot)

    assert snap_compare(make_app(chained_engine()), terminal_size=SIZE, run_before=before)
