"""Load errors and generation errors are shown in the app, which stays usable."""

from __future__ import annotations

import threading

from textual.widgets import Static

from specchat.errors import ModelLoadError, VocabMismatchError
from specchat.store import MessageStatus
from specchat.tui.loader import PairOption
from specchat.tui.screens import PairPickerScreen
from specchat.tui.widgets import MessageBox

from .conftest import ready, send, wait_for
from .fake_engine import FakeEngine, FakeLoader


async def test_load_error_is_shown_and_another_pair_can_be_loaded(make_app) -> None:
    good = FakeEngine()
    loader = FakeLoader(
        engines={
            None: VocabMismatchError("draft a.gguf and target b.gguf differ at token id 7"),
            "tiny": good,
        },
        options=[PairOption("tiny", "a working pair", "t.gguf", "d.gguf")],
    )
    app = make_app(loader=loader)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        assert screen.engine_state == "failed"
        error = screen.query_one("#engine-error", Static)
        assert error.display and "differ at token id 7" in str(error.render())
        assert "failed to load" in str(screen.query_one("#status-engine", Static).render())
        assert "could not be loaded" in screen.query_one("#welcome").source
        # sending now keeps the text and says why
        await send(pilot, "hello?", wait=False)
        assert screen.query_one("#prompt").text == "hello?" and not screen.query(MessageBox)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, PairPickerScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.engine_state == "ready")
        await pilot.pause()
        assert not error.display
        await pilot.press("enter")  # the kept text goes out now
        await wait_for(pilot, lambda: screen.replies_finished > 0)
        assert screen.query(MessageBox).last().text == "You said: hello?"


async def test_loading_state_is_visible_and_ui_responsive(make_app) -> None:
    gate = threading.Event()
    app = make_app(loader=FakeLoader(gate=gate))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.screen.id == "main")
        screen = app.screen
        await pilot.pause()
        assert screen.engine_state == "loading"
        assert "Loading pair smollm2" in str(screen.query_one("#status-engine", Static).render())
        assert screen.query_one("#status-bar").loading
        await pilot.press("h", "i")  # typing works while the models load
        assert screen.query_one("#prompt").text == "hi"
        gate.set()
        await wait_for(pilot, lambda: screen.engine_state == "ready")
        await pilot.pause()
        assert not screen.query_one("#status-bar").loading


async def test_unexpected_load_crash_is_reported_not_raised(make_app) -> None:
    loader = FakeLoader(engines={None: RuntimeError("boom")})
    async with make_app(loader=loader).run_test() as pilot:
        screen = await ready(pilot)
        assert "RuntimeError: boom" in str(screen.query_one("#engine-error", Static).render())


async def test_generation_error_marks_message_and_keeps_app_alive(make_app) -> None:
    engine = FakeEngine(error="the prompt (5000 tokens) does not fit in the context (4096)")
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "very long")
        box = screen.query(MessageBox).last()
        assert box.status is MessageStatus.ERROR
        assert "does not fit" in str(box.query_one(".message-notices").render())
        assert app.store.messages(screen.chat.id)[-1].status is MessageStatus.ERROR
        engine.error = None
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: screen.replies_finished == 2)
        await pilot.pause()
        assert [b.text for b in screen.query(MessageBox)] == ["very long", "You said: very long"]


async def test_missing_model_file_error(make_app) -> None:
    loader = FakeLoader(engines={None: ModelLoadError("/models/missing.gguf: file not found")})
    async with make_app(loader=loader).run_test() as pilot:
        screen = await ready(pilot)
        assert "missing.gguf: file not found" in str(
            screen.query_one("#engine-error", Static).render()
        )
