"""The engine thread: one thread owns the models; the UI only ever gets messages from it.

Tokens are collected by a Batcher and posted to the UI from a small flusher thread, 50 ms after
the first token of a batch and at least 100 ms after the previous batch (every batch costs the UI
thread a layout and a render: at 15 tokens/s that is ~8 batches a second rather than 15), so
decoding never waits on rendering and rendering never waits on decoding."""

from __future__ import annotations

import contextlib
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
    DraftMode,
    EngineInfo,
    GenerationSettings,
    Message,
    NoticeEvent,
    ProgressEvent,
    SpecSettings,
    Stats,
    TokenEvent,
)
from specchat.errors import DownloadError, SpecchatError
from specchat.sources.cancel import reporting
from specchat.tui.format import origin_of
from specchat.tui.widgets.context_meter import ContextForecast, forecast

BATCH_INTERVAL = 0.05  # a batch collects tokens this long after its first one
BATCH_SPACING = 0.1  # and is posted no sooner than this after the previous batch
# While a reply streams, the UI thread renders almost continuously; with Python's default 5 ms
# GIL switch interval the engine thread could wait that long after every llama.cpp call.
STREAMING_SWITCH_INTERVAL = 0.001
# On quit, how long the UI waits for the engine thread to end its pass (after cancelling it)
# before the app exits anyway; the engine is only ever closed by its own thread, after the pass.
SHUTDOWN_WAIT = 5.0


class EngineLoading(TMessage):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


class EngineReady(TMessage):
    def __init__(self, label: str, info: EngineInfo, spec: SpecSettings) -> None:
        super().__init__()
        self.label, self.info, self.spec = label, info, spec


class EngineFailed(TMessage):
    """Loading failed, or (cancelled) the user stopped it. download: a download failed (no
    network, disk full, checksum...), not the loading of files already there."""

    def __init__(
        self, label: str, error: str, cancelled: bool = False, download: bool = False
    ) -> None:
        super().__init__()
        self.label, self.error, self.cancelled = label, error, cancelled
        self.download = download


class DownloadProgress(TMessage):
    """One file of a pair being downloaded: bytes so far of total, rate and time left."""

    def __init__(
        self, label: str, name: str, done: int, total: int | None, rate: float, eta: float | None
    ) -> None:
        super().__init__()
        self.label, self.name, self.done, self.total = label, name, done, total
        self.rate, self.eta = rate, eta  # bytes/s since this run started the file; seconds


class ContextCounted(TMessage):
    """How full the context is for a chat's next request."""

    def __init__(self, chat_id: int, forecast: ContextForecast) -> None:
        super().__init__()
        self.chat_id, self.forecast = chat_id, forecast


class BaselineMeasured(TMessage):
    """The target alone's speed (tokens/s; None when it could not be measured)."""

    def __init__(self, label: str, tokens_per_second: float | None) -> None:
        super().__init__()
        self.label, self.tokens_per_second = label, tokens_per_second


class ReplyBatch(TMessage):
    """Tokens (text, origin) and the latest live stats since the previous batch. origin is
    "suffix", "model" (the drafter that proposed an accepted token), "draft" (drafter unknown)
    or "target" (see tui.format.origin_of)."""

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
            drafter = event.drafter.value if event.drafter is not None else ""
            self._tokens.append((event.text, origin_of(event.origin.value, drafter)))
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
    load: Callable[[threading.Event], ChatEngine]  # downloads and loads; stops when cancelled
    cancel: threading.Event


@dataclass(frozen=True)
class _Count:
    chat_id: int
    messages: tuple[Message, ...]
    max_tokens: int


@dataclass(frozen=True)
class _Baseline:
    label: str
    max_tokens: int


BASELINE_PROMPT = "Count from one to twenty, separated by commas."
PROGRESS_INTERVAL = 0.1  # seconds between two progress messages for one file


@dataclass
class _Transfer:
    """Rate and time left of one file's download, from what this run has fetched of it."""

    started_at: float
    started_bytes: int
    posted_at: float = 0.0

    def rate(self, done: int, now: float) -> float:
        elapsed = now - self.started_at
        return (done - self.started_bytes) / elapsed if elapsed > 0 else 0.0


class ProgressPoster:
    """The download progress sink of one load: posts at most every PROGRESS_INTERVAL per file;
    a chunk held back is posted by a timer, so a stalled download shows its last bytes."""

    def __init__(self, label: str, post: Callable[[TMessage], object]) -> None:
        self.label, self._post = label, post
        self._files: dict[str, _Transfer] = {}
        self._lock = threading.Lock()
        self._held: dict[str, tuple[int, int | None]] = {}
        self._timer: threading.Timer | None = None

    def __call__(self, name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            transfer = self._files.setdefault(name, _Transfer(now, done))
            finished = total is not None and done >= total
            if not finished and now - transfer.posted_at < PROGRESS_INTERVAL:
                self._held[name] = (done, total)
                if self._timer is None:
                    self._timer = threading.Timer(PROGRESS_INTERVAL, self._flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._held.pop(name, None)
            transfer.posted_at = now
        self._send(name, transfer, done, total, now)

    def _flush(self) -> None:
        now = time.monotonic()
        with self._lock:
            held, self._held, self._timer = self._held, {}, None
            for name in held:
                self._files[name].posted_at = now
        for name, (done, total) in held.items():
            self._send(name, self._files[name], done, total, now)

    def _send(
        self, name: str, transfer: _Transfer, done: int, total: int | None, now: float
    ) -> None:
        rate = transfer.rate(done, now)
        eta = (total - done) / rate if total is not None and rate > 0 else None
        self._post(DownloadProgress(self.label, name, done, total, rate, eta))

    def close(self) -> None:
        """The load ended: no late timer posts after it."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._held = None, {}


@dataclass(frozen=True)
class _Generate:
    reply_id: int
    messages: tuple[Message, ...]
    settings: GenerationSettings
    spec: SpecSettings | None
    cancel: threading.Event
    partial: str | None = None  # continue this reply instead of starting one


class EngineWorker:
    """Owns the engine. Jobs run one at a time, in order, on its own thread."""

    def __init__(self, target: MessagePump, interval: float = BATCH_INTERVAL) -> None:
        self._target = target
        self._interval = interval
        self._jobs: queue.Queue[_Load | _Generate | _Count | _Baseline | None] = queue.Queue()
        self._cancel: threading.Event | None = None
        self._load_cancel: threading.Event | None = None
        self.engine: ChatEngine | None = None
        self._thread = threading.Thread(target=self._run, name="specchat-engine", daemon=True)
        self._thread.start()

    def load(self, label: str, load: Callable[[threading.Event], ChatEngine]) -> None:
        cancel = threading.Event()
        self._load_cancel = cancel
        self._jobs.put(_Load(label, load, cancel))

    def generate(
        self,
        reply_id: int,
        messages: Sequence[Message],
        settings: GenerationSettings,
        spec: SpecSettings | None = None,
        partial: str | None = None,
    ) -> None:
        """Reply to messages; with `partial`, continue that reply (only new text streams)."""
        cancel = threading.Event()
        self._cancel = cancel
        self._jobs.put(_Generate(reply_id, tuple(messages), settings, spec, cancel, partial))

    def count(self, chat_id: int, messages: Sequence[Message], max_tokens: int) -> None:
        """Count the context a chat's next request would use (answered with ContextCounted)."""
        self._jobs.put(_Count(chat_id, tuple(messages), max_tokens))

    def measure_baseline(self, label: str, max_tokens: int) -> None:
        """Time a short greedy reply of the target alone (answered with BaselineMeasured)."""
        self._jobs.put(_Baseline(label, max_tokens))

    def cancel(self) -> None:
        """Stop the reply being generated (its pass ends first)."""
        if self._cancel is not None:
            self._cancel.set()

    def cancel_load(self) -> None:
        """Stop the download or model load in progress (or queued)."""
        if self._load_cancel is not None:
            self._load_cancel.set()

    def shutdown(self, timeout: float = SHUTDOWN_WAIT) -> bool:
        """Cancel what runs, let the engine thread finish its pass and close the engine itself
        (never under a running decode). Waits at most timeout; True when the thread ended."""
        self.cancel()
        self.cancel_load()
        self._jobs.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _post(self, message: TMessage) -> None:
        self._target.post_message(message)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if isinstance(job, _Load):
                self._do_load(job)
            elif isinstance(job, _Count):
                self._do_count(job)
            elif isinstance(job, _Baseline):
                self._do_baseline(job)
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
            if job.cancel.is_set():
                raise SpecchatError("loading was cancelled")
            poster = ProgressPoster(job.label, self._post)
            try:
                with reporting(poster):
                    self.engine = job.load(job.cancel)
            finally:
                poster.close()
        except Exception as exc:  # a load failure must never take the app down
            if job.cancel.is_set():
                self._post(EngineFailed(job.label, "loading was cancelled", cancelled=True))
            else:
                failed = isinstance(exc, DownloadError)
                self._post(EngineFailed(job.label, _load_error(exc), download=failed))
            return
        if job.cancel.is_set():  # cancelled after the last point the load could stop at
            self.engine.close()
            self.engine = None
            self._post(EngineFailed(job.label, "loading was cancelled", cancelled=True))
            return
        self._post(EngineReady(job.label, self.engine.info, self.engine.spec))

    def _do_count(self, job: _Count) -> None:
        engine = self.engine
        if engine is None:
            return
        try:
            result = forecast(
                list(job.messages), engine.count_tokens, engine.info.target.n_ctx, job.max_tokens
            )
        except Exception:  # a meter must never take the app down; it keeps its last value
            return
        self._post(ContextCounted(job.chat_id, result))

    def _do_baseline(self, job: _Baseline) -> None:
        engine = self.engine
        if engine is None:
            return
        spec = engine.spec
        alone = replace(spec, mode=DraftMode.NONE)
        settings = GenerationSettings(temperature=0.0, max_tokens=job.max_tokens)
        speed: float | None = None
        try:
            engine.set_spec(alone)
            for event in engine.chat([Message("user", BASELINE_PROMPT)], settings):
                if isinstance(event, DoneEvent) and event.stats.generated_tokens > 1:
                    speed = event.stats.tokens_per_second
        except Exception:  # no baseline: the speed line says so
            speed = None
        finally:
            _restore_spec(engine, spec)
        self._post(BaselineMeasured(job.label, speed))

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
            if job.partial is not None:
                events = engine.continue_(job.messages, job.partial, job.settings, job.cancel)
            else:
                events = engine.chat(job.messages, job.settings, job.cancel)
            for event in events:
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


def _restore_spec(engine: ChatEngine, spec: SpecSettings) -> None:
    """Back to the pair's settings after the target-alone run; an engine that can restores
    what its draft-length controller had learned rather than the target-alone run's numbers."""
    with contextlib.suppress(Exception):
        try:
            engine.set_spec(spec, keep_measurements=False)  # type: ignore[call-arg]
        except TypeError:
            engine.set_spec(spec)


def _load_error(exc: Exception) -> str:
    if isinstance(exc, SpecchatError):
        return exc.message
    if isinstance(exc, MemoryError):
        return "out of memory while loading the models"
    return f"{type(exc).__name__}: {exc}"


def _flush_loop(
    batcher: Batcher, stop: threading.Event, interval: float, spacing: float = BATCH_SPACING
) -> None:
    """Sleeps until the engine produces something, collects for one interval (longer when the
    previous batch went less than `spacing` ago), posts it: a token waits at most
    max(interval, spacing) before it is posted.

    No wakeups while the engine computes: every wakeup takes the GIL from the engine thread."""
    posted = float("-inf")
    while True:
        batcher.pending.wait()
        if stop.wait(max(interval, posted + spacing - time.monotonic())):
            return  # the engine thread flushes what is left
        batcher.flush()
        posted = time.monotonic()
