"""Snapshots of reply views: a reasoning reply with its thinking folded (and unfolded), a
focused reply with code blocks, a regenerated reply with its variant marker.

Update after an intended UI change:
pytest tests/tui/test_snapshots_replies.py --snapshot-update"""

from __future__ import annotations

from textual.pilot import Pilot

from specchat.tui.widgets import MessageBox
from specchat.tui.widgets.thinking import ThinkingBlock

from .conftest import main_screen, ready, send, wait_for
from .fake_engine import CODE_REPLY, FakeEngine, scripted, thinking_reply

SIZE = (110, 34)
THOUGHT = (
    "The user asks why the sky is blue. Rayleigh scattering: shorter wavelengths scatter\n"
    "more. Keep it to two sentences."
)
ANSWER = (
    "Sunlight is scattered by air molecules, and **blue light scatters most** because its\n"
    "wavelength is short. So blue reaches your eyes from every direction of the sky."
)


async def steady(pilot: Pilot) -> None:
    """No blinking cursor in snapshots (it would be caught on or off at random)."""
    main_screen(pilot.app).query_one("#prompt").cursor_blink = False  # type: ignore[arg-type]
    await pilot.pause()


def thinking_engine() -> FakeEngine:
    return FakeEngine(reply=lambda m: scripted(thinking_reply(THOUGHT, ANSWER)))


def test_thinking_folded(snap_compare, make_app) -> None:
    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await send(pilot, "Why is the sky blue?")
        await steady(pilot)

    assert snap_compare(make_app(thinking_engine()), terminal_size=SIZE, run_before=before)


def test_thinking_unfolded(snap_compare, make_app) -> None:
    async def before(pilot: Pilot) -> None:
        screen = await ready(pilot)
        await send(pilot, "Why is the sky blue?")
        screen.query(MessageBox).last().query_one(ThinkingBlock).collapsed = False
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(make_app(thinking_engine()), terminal_size=SIZE, run_before=before)


def test_focused_reply_with_code_blocks(snap_compare, make_app) -> None:
    async def before(pilot: Pilot) -> None:
        screen = await ready(pilot)
        await send(pilot, "Print hello")
        screen.query(MessageBox).last().focus()
        await pilot.pause()
        await steady(pilot)

    app = make_app(FakeEngine(reply=lambda m: scripted(CODE_REPLY)))
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_regenerated_reply_shows_its_variants(snap_compare, make_app) -> None:
    answers = iter(["The first answer.", "A second, different answer."])

    async def before(pilot: Pilot) -> None:
        screen = await ready(pilot)
        await send(pilot, "Say something")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: screen.replies_finished == 2)
        await pilot.pause()
        await steady(pilot)

    app = make_app(FakeEngine(reply=lambda m: scripted(next(answers))))
    assert snap_compare(app, terminal_size=SIZE, run_before=before)
