"""The engine thread: one thread owns the models; the UI only ever gets messages from it.

Tokens are collected by a Batcher and posted to the UI about every 50 ms from a small flusher
thread, so decoding never waits on rendering and rendering never waits on decoding."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from textual.message import Message as TMessage
from textual.message_pump import MessagePump

from specchat.engine.protocol import ChatEngine
from specchat.engine.types import (
    DoneEvent,
    EngineInfo,
    GenerationSettings,
    Message,
    NoticeEvent,
    ProgressEvent,
    SpecSettings,
    Stats,
    TokenEvent,
)
from specchat.errors import SpecchatError

BATCH_INTERVAL = 0.05
# While a reply streams, the UI thread renders almost continuously; with Python's default 5 ms
# GIL switch interval the engine thread could wait that long after every llama.cpp call.
STREAMING_SWITCH_INTERVAL = 0.001


class EngineLoading(TMessage):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


class EngineReady(TMessage):
    def __init__(self, label: str, info: EngineInfo, spec: SpecSettings) -> None:
        super().__init__()
        self.label, self.info, self.spec = label, info, spec


class EngineFailed(TMessage):
    def __init__(self, label: str, error: str) -> None:
        super().__init__()
        self.label, self.error = label, error


class ReplyBatch(TMessage):
    """Tokens (text, origin) and the latest live stats since the previous batch."""

    def __init__(
        self,
        reply_id: int,
        tokens: tuple[tuple[str, str], ...],
        stats: Stats | None,
        notices: tuple[str, ...],
        first_token_at: float | None,
        seq: int,
        speeds: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        self.reply_id, self.tokens, self.stats, self.notices = reply_id, tokens, stats, notices
        self.speeds = speeds  # tokens_per_second of every ProgressEvent in the batch
        self.first_token_at = first_token_at  # time.monotonic() when the oldest token arrived
        self.seq = seq


class ReplyFinished(TMessage):
    def __init__(self, reply_id: int, done: DoneEvent | None, error: str | None) -> None:
        super().__init__()
        self.reply_id, self.done, self.error = reply_id, done, error


@dataclass
class Batcher:
    """Collects events from the engine thread; flush() posts what is pending as one message."""

    reply_id: int
    post: Callable[[TMessage], object]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tokens: list[tuple[str, str]] = field(default_factory=list)
    _stats: Stats | None = None
    _notices: list[str] = field(default_factory=list)
    _speeds: list[float] = field(default_factory=list)
    _first_at: float | None = None
    seq: int = 0
    pending: threading.Event = field(default_factory=threading.Event)  # something to flush

    def token(self, event: TokenEvent) -> None:
        with self._lock:
            if self._first_at is None:
                self._first_at = time.monotonic()
            self._tokens.append((event.text, event.origin.value))
            self.pending.set()

    def stats(self, stats: Stats) -> None:
        with self._lock:
            self._stats = replace(stats)
            if stats.generated_tokens > 1:  # tokens/s is defined from the second token on
                self._speeds.append(stats.tokens_per_second)
            self.pending.set()

    def notice(self, message: str) -> None:
        with self._lock:
            self._notices.append(message)
            self.pending.set()

    def flush(self) -> None:
        with self._lock:
            if not (self._tokens or self._stats or self._notices):
                return
            batch = ReplyBatch(
                self.reply_id,
                tuple(self._tokens),
                self._stats,
                tuple(self._notices),
                self._first_at,
                self.seq,
                tuple(self._speeds),
            )
            self.seq += 1
            self._tokens, self._stats, self._notices, self._speeds = [], None, [], []
            self._first_at = None
            self.pending.clear()
        self.post(batch)


@dataclass(frozen=True)
class _Load:
    label: str
    load: Callable[[], ChatEngine]


@dataclass(frozen=True)
class _Generate:
    reply_id: int
    messages: tuple[Message, ...]
    settings: GenerationSettings
    spec: SpecSettings | None
    cancel: threading.Event


class EngineWorker:
    """Owns the engine. Jobs run one at a time, in order, on its own thread."""

    def __init__(self, target: MessagePump, interval: float = BATCH_INTERVAL) -> None:
        self._target = target
        self._interval = interval
        self._jobs: queue.Queue[_Load | _Generate | None] = queue.Queue()
        self._cancel: threading.Event | None = None
        self.engine: ChatEngine | None = None
        self._thread = threading.Thread(target=self._run, name="specchat-engine", daemon=True)
        self._thread.start()

    def load(self, label: str, load: Callable[[], ChatEngine]) -> None:
        self._jobs.put(_Load(label, load))

    def generate(
        self,
        reply_id: int,
        messages: Sequence[Message],
        settings: GenerationSettings,
        spec: SpecSettings | None = None,
    ) -> None:
        cancel = threading.Event()
        self._cancel = cancel
        self._jobs.put(_Generate(reply_id, tuple(messages), settings, spec, cancel))

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def shutdown(self, timeout: float = 5.0) -> None:
        self.cancel()
        self._jobs.put(None)
        self._thread.join(timeout)

    def _post(self, message: TMessage) -> None:
        self._target.post_message(message)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if isinstance(job, _Load):
                self._do_load(job)
            else:
                self._do_generate(job)
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def _do_load(self, job: _Load) -> None:
        self._post(EngineLoading(job.label))
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        try:
            self.engine = job.load()
        except SpecchatError as exc:
            self._post(EngineFailed(job.label, exc.message))
        except MemoryError:
            self._post(EngineFailed(job.label, "out of memory while loading the models"))
        except Exception as exc:  # a load failure must never take the app down
            self._post(EngineFailed(job.label, f"{type(exc).__name__}: {exc}"))
        else:
            self._post(EngineReady(job.label, self.engine.info, self.engine.spec))

    def _do_generate(self, job: _Generate) -> None:
        engine = self.engine
        if engine is None:
            self._post(ReplyFinished(job.reply_id, None, "no model is loaded"))
            return
        batcher = Batcher(job.reply_id, self._post)
        stop = threading.Event()
        flusher = threading.Thread(
            target=_flush_loop, args=(batcher, stop, self._interval), daemon=True
        )
        done: DoneEvent | None = None
        error: str | None = None
        flusher.start()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, STREAMING_SWITCH_INTERVAL))
        try:
            if job.spec is not None and job.spec != engine.spec:
                engine.set_spec(job.spec)
            for event in engine.chat(job.messages, job.settings, job.cancel):
                if isinstance(event, TokenEvent):
                    batcher.token(event)
                elif isinstance(event, ProgressEvent):
                    batcher.stats(event.stats)
                elif isinstance(event, NoticeEvent):
                    batcher.notice(event.message)
                elif isinstance(event, DoneEvent):
                    done = event
        except SpecchatError as exc:
            error = exc.message
        except Exception as exc:  # keep the app alive; show what happened
            error = f"{type(exc).__name__}: {exc}"
        finally:
            sys.setswitchinterval(switch_interval)
            stop.set()
            batcher.pending.set()  # wake the flusher so that it sees stop
            flusher.join()
            batcher.flush()
        self._post(ReplyFinished(job.reply_id, done, error))


def _flush_loop(batcher: Batcher, stop: threading.Event, interval: float) -> None:
    """Sleeps until the engine produces something, collects for one interval, posts it.

    No wakeups while the engine computes: every wakeup takes the GIL from the engine thread."""
    while True:
        batcher.pending.wait()
        if stop.wait(interval):
            return  # the engine thread flushes what is left
        batcher.flush()
