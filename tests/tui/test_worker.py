"""The engine thread: owns the engine, batches tokens, posts messages in order."""

from __future__ import annotations

import threading
import time

from specchat.engine.types import GenerationSettings, Message
from specchat.tui.worker import (
    EngineFailed,
    EngineLoading,
    EngineReady,
    EngineWorker,
    ReplyBatch,
    ReplyFinished,
)

from .fake_engine import FakeEngine, FakeLoader, scripted


class Collector:
    """Stands in for the screen: records what the worker posts, from any thread."""

    def __init__(self) -> None:
        self.messages: list[object] = []
        self.lock = threading.Lock()

    def post_message(self, message: object) -> bool:
        with self.lock:
            self.messages.append(message)
        return True

    def wait_for(self, kind: type, timeout: float = 5.0) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [m for m in self.messages if isinstance(m, kind)]
            if found:
                return found[-1]
            time.sleep(0.005)
        raise AssertionError(f"no {kind.__name__} posted")


def test_one_thread_owns_the_engine_and_batches_tokens() -> None:
    text = " ".join(f"w{i}" for i in range(200))
    engine = FakeEngine(reply=lambda m: scripted(text), token_delay=0.001)
    loader = FakeLoader(engines={None: engine})
    target = Collector()
    worker = EngineWorker(target)  # type: ignore[arg-type]
    worker.load("pair x", lambda cancel: loader.load(None, cancel))
    assert isinstance(target.wait_for(EngineReady), EngineReady)
    worker.generate(7, [Message("user", "go")], GenerationSettings(max_tokens=1000))
    finished = target.wait_for(ReplyFinished)
    worker.shutdown()
    assert isinstance(finished, ReplyFinished) and finished.error is None
    batches = [m for m in target.messages if isinstance(m, ReplyBatch)]
    assert [b.seq for b in batches] == list(range(len(batches)))  # in order, none missing
    assert "".join(t for b in batches for t, _ in b.tokens) == finished.done.text == text
    assert 2 <= len(batches) < 100  # ~50 ms batches, not one message per token
    assert target.messages.index(finished) == len(target.messages) - 1  # done comes last
    # loading, generating and closing all happened on the one engine thread
    assert set(loader.threads + engine.threads) == {"specchat-engine"} and engine.closed


def test_load_failure_and_reload() -> None:
    target = Collector()
    worker = EngineWorker(target)  # type: ignore[arg-type]

    def broken() -> FakeEngine:
        raise MemoryError

    worker.load("big", lambda cancel: broken())
    failed = target.wait_for(EngineFailed)
    assert isinstance(failed, EngineFailed) and "out of memory" in failed.error
    worker.generate(1, [Message("user", "x")], GenerationSettings())
    finished = target.wait_for(ReplyFinished)
    assert finished.error == "no model is loaded"
    first, second = FakeEngine(), FakeEngine()
    worker.load("a", lambda cancel: first)
    target.wait_for(EngineReady)
    worker.load("b", lambda cancel: second)
    deadline = time.monotonic() + 5
    while sum(isinstance(m, EngineReady) for m in target.messages) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert first.closed and not second.closed  # the previous models are freed first
    assert sum(isinstance(m, EngineLoading) for m in target.messages) == 3
    worker.shutdown()
    assert second.closed


def test_models_leave_a_core_for_the_ui_unless_threads_are_set(monkeypatch) -> None:
    from pathlib import Path

    from specchat.engine.types import ModelSettings
    from specchat.tui import loader

    monkeypatch.setattr(loader.os, "cpu_count", lambda: 8)
    assert loader.leave_a_core(ModelSettings(Path("m.gguf"))).n_threads == 7
    assert loader.leave_a_core(ModelSettings(Path("m.gguf"), n_threads=3)).n_threads == 3
    monkeypatch.setattr(loader.os, "cpu_count", lambda: 1)
    assert loader.ui_threads() == 1
