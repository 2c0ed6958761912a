"""Fixtures for the chat app tests: a history store in tmp_path and an app factory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from specchat.store import ChatStore
from specchat.tui import SpecchatApp
from specchat.tui.screens.main import MainScreen

from .fake_engine import FakeEngine, FakeLoader

CLOCK_START = 1_750_000_000.0


class Clock:
    """A store clock that ticks one second per call: stable order, stable export dates."""

    def __init__(self) -> None:
        self.now = CLOCK_START

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"


@pytest.fixture
def make_app(db_path: Path, tmp_path: Path) -> Callable[..., SpecchatApp]:
    def make(
        engine: FakeEngine | None = None,
        loader: FakeLoader | None = None,
        keymap: dict[str, str] | None = None,
        busy_timeout: float = 3.0,
    ) -> SpecchatApp:
        if loader is None:
            loader = FakeLoader(engines={None: engine or FakeEngine()})
        store = ChatStore(db_path, clock=Clock(), busy_timeout=busy_timeout)
        return SpecchatApp(store, loader, keymap=keymap, export_dir=tmp_path / "exports")

    return make


def main_screen(app: SpecchatApp) -> MainScreen:
    return next(s for s in app.screen_stack if isinstance(s, MainScreen))


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.01)


async def ready(pilot: Pilot, timeout: float = 5.0) -> MainScreen:
    """Wait until the main screen is up and its engine loaded."""
    await wait_for(pilot, lambda: any(isinstance(s, MainScreen) for s in pilot.app.screen_stack))
    screen = main_screen(pilot.app)  # type: ignore[arg-type]
    await wait_for(pilot, lambda: screen.engine_state in ("ready", "failed"), timeout)
    await pilot.pause()
    return screen


async def send(pilot: Pilot, text: str, wait: bool = True, timeout: float = 5.0) -> MainScreen:
    screen = main_screen(pilot.app)  # type: ignore[arg-type]
    before = screen.replies_finished
    prompt = screen.query_one("#prompt")
    prompt.focus()
    prompt.text = text  # type: ignore[attr-defined]
    await pilot.press("enter")
    if wait:
        await wait_for(pilot, lambda: screen.replies_finished > before, timeout)
        await pilot.pause()
    return screen
