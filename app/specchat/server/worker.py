"""One thread owns the engine; requests wait their turn in a first-come, first-served queue.

Engine calls never run concurrently. Each job carries its own cancel event (set when its client
goes away or the server stops) and a `deliver` callback that hands events back to the request's
event loop, a target pass's tokens at a time; the worker never touches asyncio itself."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from specchat.engine.protocol import ChatEngine
from specchat.engine.types import (
    DoneEvent,
    Event,
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


# What a job runs on the worker thread: (the engine, the job's cancel event) -> its events.
Run = Callable[[Any, threading.Event], Iterator[Event]]


@dataclass(eq=False)  # hashable by identity: the worker keeps a set of them
class Job:
    run: Run
    deliver: Callable[[list[Item]], None]  # called on the worker thread, items in order
    cancel: threading.Event = field(default_factory=threading.Event)


def chat_job(
    messages: Sequence[Message],
    settings: GenerationSettings,
    deliver: Callable[[list[Item]], None],
    tools: Sequence[dict[str, Any]] | None = None,
) -> Job:
    """A reply to a conversation (and tools), rendered with the target's chat template."""
    if tools:
        return Job(
            lambda engine, cancel: engine.chat(messages, settings, cancel=cancel, tools=tools),
            deliver,
        )
    return Job(lambda engine, cancel: engine.chat(messages, settings, cancel=cancel), deliver)


@dataclass
class Counters:
    served: int = 0  # jobs that ran to a DoneEvent
    cancelled: int = 0  # of those, stopped by their cancel event
    skipped: int = 0  # cancelled while waiting for their turn
    refused_full: int = 0  # turned away: the wait queue was full
    busy_s: float = 0.0  # time spent running jobs


class QueueFull(Exception):
    """The wait queue holds its most jobs; `retry_after_s` estimates when a place frees up."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class EngineWorker:
    def __init__(self, engine: ChatEngine, max_waiting: int | None = None) -> None:
        self.engine = engine
        self.max_waiting = max_waiting  # None: no bound
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
        """Queue a job; False once the worker is closing. Raises QueueFull when `max_waiting`
        jobs already wait for their turn."""
        with self._lock:
            if self._closed:
                return False
            if self.max_waiting is not None and self.waiting >= self.max_waiting:
                self.counters.refused_full += 1
                raise QueueFull(self._retry_after())
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

    def _retry_after(self) -> int:
        """Seconds until the queue has room, were every waiting job as long as the average."""
        done = self.counters.served or 1
        return max(1, math.ceil(self.counters.busy_s / done * max(1, self.waiting)))

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            start = time.monotonic()
            try:
                self._serve(job)
            finally:
                self.counters.busy_s += time.monotonic() - start
                with self._lock:
                    self._jobs.discard(job)

    def _serve(self, job: Job) -> None:
        if job.cancel.is_set():
            self.counters.skipped += 1
            job.deliver([Skipped()])
            return
        pending: list[Item] = []
        try:
            for event in job.run(self.engine, job.cancel):
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
