"""Esc during a download or model load stops it; quitting never closes the engine mid-pass."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from textual.widgets import Static

from specchat.engine.types import Event, GenerationSettings, Message
from specchat.store import ChatStore, MessageStatus
from specchat.tui.screens.main import MainScreen
from specchat.tui.worker import EngineFailed, EngineReady, EngineWorker

from .conftest import main_screen, ready, send, wait_for
from .fake_engine import FakeEngine, FakeLoader, scripted
from .test_worker import Collector


@dataclass
class PassEngine(FakeEngine):
    """Its second token sits in a 'pass' that, like a llama.cpp decode, cannot be interrupted:
    once cancelled it still takes `pass_tail` seconds to return. close() records whether a
    pass was running."""

    pass_tail: float = 0.2
    in_pass: threading.Event = field(default_factory=threading.Event)
    log: list[str] = field(default_factory=list)

    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        for index, event in enumerate(super().chat(messages, settings, cancel)):
            if index == 1:
                self._one_pass(cancel)
            yield event

    def _one_pass(self, cancel: threading.Event | None) -> None:
        self.log.append("pass starts")
        self.in_pass.set()
        assert cancel is not None
        cancel.wait(30)
        time.sleep(self.pass_tail)  # the decode under way finishes
        self.in_pass.clear()
        self.log.append("pass ends")

    def close(self) -> None:
        self.log.append("close during a pass" if self.in_pass.is_set() else "close")
        super().close()


async def test_quitting_while_a_pass_runs_closes_the_engine_after_it(make_app, db_path) -> None:
    engine = PassEngine(reply=lambda m: scripted("one two three four"))
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "q", wait=False)
        await wait_for(pilot, engine.in_pass.is_set)
        worker = screen.worker
        assert worker is not None
        await pilot.press("ctrl+q")  # quit mid-pass
    assert not worker._thread.is_alive()  # the quit waited for the pass
    assert engine.log == ["pass starts", "pass ends", "close"]
    assert engine.threads[-1] == "specchat-engine"  # closed by the thread that decodes
    store = ChatStore(db_path)
    last = store.messages(store.list_chats()[0].id)[-1]
    assert last.status is MessageStatus.CANCELLED


def test_a_pass_longer_than_the_wait_is_never_closed_under() -> None:
    """When the pass outlasts the bounded wait, quitting leaves the engine to its own thread,
    which closes it once the pass is over."""
    engine = PassEngine(reply=lambda m: scripted("one two three four"), pass_tail=0.5)
    target = Collector()
    worker = EngineWorker(target)  # type: ignore[arg-type]
    worker.load("x", lambda cancel: engine)
    target.wait_for(EngineReady)
    worker.generate(1, [Message("user", "q")], GenerationSettings())
    assert engine.in_pass.wait(10)
    assert worker.shutdown(timeout=0.01) is False  # gave up waiting; closed nothing
    assert "close" not in " ".join(engine.log)
    worker._thread.join(10)
    assert engine.log == ["pass starts", "pass ends", "close"]


async def test_esc_during_a_download_or_load_cancels_it(make_app) -> None:
    gate = threading.Event()  # the 'download' never finishes by itself
    loader = FakeLoader(engines={None: FakeEngine()}, gate=gate)
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: any(isinstance(s, MainScreen) for s in app.screen_stack))
        screen = main_screen(app)
        await wait_for(pilot, loader.waiting.is_set)
        assert screen.engine_state == "loading"
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen.engine_state == "failed")
        await pilot.pause()
        assert screen.engine_error == "loading was cancelled"
        assert "loading was cancelled" in str(screen.query_one("#engine-error", Static).render())
        assert not [n for n in app._notifications if n.severity == "error"]  # not an error
        assert loader.loaded == []  # it stopped before the engine was made
        gate.set()
        screen.load_pair(None)  # the user picks it again: loads normally
        await wait_for(pilot, lambda: screen.engine_state == "ready")
        await send(pilot, "hi")
        report = screen.last_report
        assert report is not None and report.status is MessageStatus.COMPLETE


async def test_quitting_during_a_load_cancels_it(make_app) -> None:
    loader = FakeLoader(engines={None: FakeEngine()}, gate=threading.Event())
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: any(isinstance(s, MainScreen) for s in app.screen_stack))
        await wait_for(pilot, loader.waiting.is_set)
        worker = main_screen(app).worker
        assert worker is not None
        await pilot.press("ctrl+q")
    assert not worker._thread.is_alive()  # the load stopped; the engine thread ended
    assert loader.loaded == []


def test_a_load_that_cannot_stop_is_dropped_when_cancelled() -> None:
    """An engine load with no cancel support: once it returns, the cancelled engine is closed."""
    engine = FakeEngine()
    target = Collector()
    worker = EngineWorker(target)  # type: ignore[arg-type]
    started, release = threading.Event(), threading.Event()

    def slow_load(cancel: threading.Event) -> FakeEngine:
        started.set()
        release.wait(10)  # ignores cancel
        return engine

    worker.load("x", slow_load)
    assert started.wait(10)
    worker.cancel_load()
    release.set()
    failed = target.wait_for(EngineFailed)
    assert isinstance(failed, EngineFailed) and failed.cancelled
    assert engine.closed and worker.engine is None
    worker.shutdown()
