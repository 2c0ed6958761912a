"""One thread owns the engine; requests wait their turn in a first-come, first-served queue.

Engine calls never run concurrently. Each job carries its own cancel event (set when its client
goes away or the server stops) and a `deliver` callback that hands events back to the request's
event loop, a target pass's tokens at a time; the worker never touches asyncio itself."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from specchat.engine.protocol import ChatEngine
from specchat.engine.types import (
    DoneEvent,
    GenerationSettings,
    Message,
    NoticeEvent,
    ProgressEvent,
    TokenEvent,
)
from specchat.errors import SpecchatError

log = logging.getLogger("specchat.server")


class Skipped:
    """Delivered instead of events when a job was cancelled before its turn came."""


@dataclass
class Failure:
    """Delivered when the engine refused or failed the job (the last item it gets)."""

    error: Exception


Item = TokenEvent | DoneEvent | Skipped | Failure


@dataclass(eq=False)  # hashable by identity: the worker keeps a set of them
class Job:
    messages: tuple[Message, ...]
    settings: GenerationSettings
    deliver: Callable[[list[Item]], None]  # called on the worker thread, items in order
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class Counters:
    served: int = 0  # jobs that ran to a DoneEvent
    cancelled: int = 0  # of those, stopped by their cancel event
    skipped: int = 0  # cancelled while waiting for their turn


class EngineWorker:
    def __init__(self, engine: ChatEngine) -> None:
        self.engine = engine
        self.counters = Counters()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._jobs: set[Job] = set()  # waiting or running
        self._lock = threading.RLock()  # cancel_all may run in a signal handler, mid-submit
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="specchat-engine", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, job: Job) -> bool:
        """Queue a job; False once the worker is closing."""
        with self._lock:
            if self._closed:
                return False
            self._jobs.add(job)
            self._queue.put(job)
        return True

    def cancel_all(self) -> None:
        """Stop the running job and skip the waiting ones; safe from any thread."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel.set()

    def close(self, timeout: float = 30.0) -> None:
        """Cancel everything, wait for the thread, free the models."""
        self.cancel_all()
        self._queue.put(None)
        self._thread.join(timeout)
        self.engine.close()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self._serve(job)
            finally:
                with self._lock:
                    self._jobs.discard(job)

    def _serve(self, job: Job) -> None:
        if job.cancel.is_set():
            self.counters.skipped += 1
            job.deliver([Skipped()])
            return
        pending: list[Item] = []
        try:
            for event in self.engine.chat(job.messages, job.settings, cancel=job.cancel):
                if isinstance(event, ProgressEvent):  # a target pass ended: hand its tokens over
                    _flush(job, pending)
                elif isinstance(event, TokenEvent | DoneEvent):
                    pending.append(event)
                elif isinstance(event, NoticeEvent):
                    log.info("%s", event.message)
                if isinstance(event, DoneEvent):
                    self._count(event)
        except SpecchatError as exc:
            pending.append(Failure(exc))
        except Exception as exc:  # the server must keep serving; the client gets a 500
            log.exception("generation failed")
            pending.append(Failure(exc))
        finally:
            _flush(job, pending)

    def _count(self, done: DoneEvent) -> None:
        self.counters.served += 1
        if done.stats.finish_reason == "cancelled":
            self.counters.cancelled += 1


def _flush(job: Job, pending: list[Item]) -> None:
    """One hand-over per target pass, not per token: each wakes the event loop."""
    if pending:
        job.deliver(pending[:])
        pending.clear()
