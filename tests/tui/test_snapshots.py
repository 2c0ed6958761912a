"""Snapshots of the main screens (pytest-textual-snapshot), with the fake engine's frozen stats.

Update after an intended UI change: pytest tests/tui/test_snapshots.py --snapshot-update"""

from __future__ import annotations

from textual.pilot import Pilot

from specchat.errors import VocabMismatchError
from specchat.tui.loader import PairOption
from specchat.tui.screens import PairPickerScreen, SummaryScreen
from specchat.tui.widgets import MessageBox

from .conftest import main_screen, ready, send, wait_for
from .fake_engine import FakeEngine, FakeLoader, scripted

SIZE = (110, 34)
REPLY = (
    "Speculative decoding pairs a **small draft** with a **large target**:\n\n"
    "1. the draft proposes a few tokens\n2. the target checks them in one pass\n\n"
    "```python\naccepted = longest_common_prefix(draft, target)\n```\n"
)
PAIRS = [
    PairOption("demo", "Qwen2.5-Coder 0.5B with SmolLM2 135M", "qwen.gguf", "smollm2.gguf"),
    PairOption("smollm2-self", "SmolLM2 drafting for itself", "smollm2.gguf", "smollm2.gguf"),
    PairOption("gemma-alone", "Gemma 3 270M, no draft", "gemma.gguf", None),
]


async def steady(pilot: Pilot) -> None:
    """No blinking cursor in snapshots (it would be caught on or off at random)."""
    main_screen(pilot.app).query_one("#prompt").cursor_blink = False  # type: ignore[arg-type]
    await pilot.pause()


def engine() -> FakeEngine:
    return FakeEngine(reply=lambda m: scripted(REPLY))


def test_welcome(snap_compare, make_app) -> None:
    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await steady(pilot)

    assert snap_compare(make_app(engine()), terminal_size=SIZE, run_before=before)


def test_chat_with_reply_and_stats(snap_compare, make_app) -> None:
    async def before(pilot: Pilot) -> None:
        screen = await ready(pilot)
        await send(pilot, "How does speculative decoding work?")
        screen.query(MessageBox).last().query_one("Collapsible").collapsed = False
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(make_app(engine()), terminal_size=SIZE, run_before=before)


def test_streaming_with_origin_colouring(snap_compare, make_app) -> None:
    fake = FakeEngine(reply=lambda m: scripted(REPLY), pause_after=22)
    partial = "".join(t for t, _ in scripted(REPLY)[:22])

    async def before(pilot: Pilot) -> None:
        screen = await ready(pilot)
        await pilot.press("ctrl+o")
        await send(pilot, "Explain, with colours", wait=False)
        await wait_for(pilot, lambda: screen.query(MessageBox).last().text == partial)
        await wait_for(pilot, lambda: screen.query_one("#status-bar").stats is not None)
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(make_app(fake), terminal_size=SIZE, run_before=before)
    fake.resume.set()


def test_load_error(snap_compare, make_app) -> None:
    error = VocabMismatchError(
        "draft smollm2.gguf and target qwen.gguf have different vocabularies"
        " (first differing token id 5)"
    )
    loader = FakeLoader(engines={None: error}, label="pair demo")

    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        pilot.app.clear_notifications()
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(make_app(loader=loader), terminal_size=SIZE, run_before=before)


def test_pair_picker(snap_compare, make_app) -> None:
    loader = FakeLoader(engines={None: engine()}, options=PAIRS)

    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PairPickerScreen))
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(make_app(loader=loader), terminal_size=SIZE, run_before=before)


def test_chat_summary(snap_compare, make_app) -> None:
    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await send(pilot, "one")
        await send(pilot, "two")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SummaryScreen))
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(make_app(engine()), terminal_size=SIZE, run_before=before)


def test_origin_colouring_light_theme(snap_compare, make_app) -> None:
    async def before(pilot: Pilot) -> None:
        pilot.app.theme = "textual-light"
        await ready(pilot)
        await send(pilot, "Colours in the light theme")
        await pilot.press("ctrl+o")
        await steady(pilot)

    assert snap_compare(make_app(engine()), terminal_size=SIZE, run_before=before)
