"""The engine worker on a scripted engine: first come first served, cancel while waiting or
running, a refused job does not stop the worker, close() frees the engine."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

from specchat.engine.types import (
    DoneEvent,
    GenerationSettings,
    Message,
    Origin,
    Stats,
    TokenEvent,
)
from specchat.errors import SpecchatError
from specchat.server.worker import EngineWorker, Failure, Job, Skipped, chat_job


class GateEngine:
    """Replies with the prompt's text as one token; the reply "wait" holds until released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.closed = False

    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[object]:
        text = messages[-1].content
        self.calls.append(text)
        if text == "refuse":
            raise SpecchatError("prompt is too long")
        yield TokenEvent(text, 1, Origin.TARGET)
        if text == "wait":
            self.started.set()
            while not (self.release.is_set() or (cancel is not None and cancel.is_set())):
                self.release.wait(0.01)
        finish = "cancelled" if cancel is not None and cancel.is_set() else "stop"
        yield DoneEvent(text, (1,), Stats(generated_tokens=1, finish_reason=finish))

    def close(self) -> None:
        self.closed = True


def _job(text: str) -> tuple[Job, queue.Queue]:
    items: queue.Queue = queue.Queue()

    def deliver(batch: list) -> None:
        for item in batch:
            items.put(item)

    return chat_job((Message("user", text),), GenerationSettings(), deliver), items


def _last(items: queue.Queue) -> object:
    while True:
        item = items.get(timeout=10)
        if not isinstance(item, TokenEvent):
            return item


def test_first_come_first_served_and_cancel_while_waiting():
    engine = GateEngine()
    worker = EngineWorker(engine)  # type: ignore[arg-type]
    (first, a), (second, b), (third, c) = _job("wait"), _job("two"), _job("three")
    for job in (first, second, third):
        assert worker.submit(job)
    assert engine.started.wait(10)
    assert worker.waiting == 2
    second.cancel.set()  # its client left while it waited
    engine.release.set()
    assert isinstance(_last(a), DoneEvent)
    assert isinstance(_last(b), Skipped)
    assert isinstance(_last(c), DoneEvent)
    assert engine.calls == ["wait", "three"]
    assert (worker.counters.served, worker.counters.skipped) == (2, 1)
    worker.close()


def test_a_refused_job_does_not_stop_the_worker():
    worker = EngineWorker(GateEngine())  # type: ignore[arg-type]
    (bad, a), (good, b) = _job("refuse"), _job("fine")
    worker.submit(bad)
    worker.submit(good)
    failure = _last(a)
    assert isinstance(failure, Failure) and "too long" in str(failure.error)
    assert isinstance(_last(b), DoneEvent)
    worker.close()


def test_close_cancels_the_running_job_and_frees_the_engine():
    engine = GateEngine()
    worker = EngineWorker(engine)  # type: ignore[arg-type]
    running, items = _job("wait")
    worker.submit(running)
    assert engine.started.wait(10)
    worker.close()
    done = _last(items)
    assert isinstance(done, DoneEvent) and done.stats.finish_reason == "cancelled"
    assert engine.closed and worker.counters.cancelled == 1
    assert not worker.submit(_job("late")[0])
