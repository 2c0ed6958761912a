"""ggml's aborts from ggml-rpc, caught, and the thread that runs a model's RPC-touching calls.

ggml-rpc ends the whole process (GGML_ABORT) when a server vanishes mid-pass, on its dispatcher
thread, while the thread that asked waits for an answer that never comes. Our abort callback
(ggml_set_abort_callback) records the message and parks that dispatcher thread for good instead
of returning to abort(); the caller's work runs on an RpcRunner thread, so the caller, waiting
for done-or-fatal, can give up and raise RpcConnectionError. The model is then never freed
(freeing would join the parked thread)."""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from specchat.engine.llama.devices import ggml_library
from specchat.errors import RpcConnectionError, RpcUnavailableError

# A pass that takes longer than this makes the runner check, every PROBE_EVERY_S, that the
# servers still accept connections (a host gone from the network sends no reset).
PROBE_AFTER_S = 10.0
PROBE_EVERY_S = 10.0
# Calls that only ask a server something (register it, its memory) get this long.
QUERY_TIMEOUT_S = 15.0
# A pass still running this long after the user cancelled (or the model began closing) is given
# up: a stopped server (alive on the network, never answering) must not hang the app.
GIVE_UP_GRACE_S = 30.0
REBUILD_HINT = (
    'reinstall llama-cpp-python with RPC: CMAKE_ARGS="-DGGML_RPC=ON" pip install '
    "--force-reinstall --no-cache-dir llama-cpp-python (or bash packaging/install.sh)"
)
ABORT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


def accepts_connections(endpoint: str, timeout: float = 1.0) -> bool:
    """Whether something still accepts TCP connections there (a liveness probe, no hello)."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _set_abort_function() -> Callable[[Any], Any] | None:
    lib = ggml_library()
    fn = getattr(lib, "ggml_set_abort_callback", None) if lib is not None else None
    if fn is None:
        from specchat.engine.llama.threads import load_ggml_part

        base = load_ggml_part("ggml-base")
        fn = getattr(base, "ggml_set_abort_callback", None) if base is not None else None
    if fn is not None:
        fn.restype = ctypes.c_void_p
        fn.argtypes = [ABORT_CALLBACK]
    return fn


@dataclass
class _Fatal:
    """What ggml-rpc aborted with (process-wide: the abort callback is global)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: list[str] = field(default_factory=list)
    waiters: set[threading.Event] = field(default_factory=set)
    dead: set[str] = field(default_factory=set)  # endpoints unusable until the process restarts
    installed: bool = False

    def record(self, message: str) -> None:
        with self.lock:
            self.messages.append(message)
            waiters = list(self.waiters)
        for event in waiters:
            event.set()


_FATAL = _Fatal()


def _park_forever() -> None:
    """Block this (ggml-rpc) thread for good, without holding the GIL."""
    lock = _thread.allocate_lock()
    lock.acquire()
    lock.acquire()


@ABORT_CALLBACK
def _on_ggml_abort(message: bytes | None) -> None:
    text = (message or b"").decode("utf-8", errors="replace").strip()
    if "ggml-rpc" not in text:
        # Not ours: ggml aborts the process as it would have, after printing what it says.
        with contextlib.suppress(OSError):
            os.write(2, f"ggml: {text}\n".encode())
        return
    _FATAL.record(text)
    _park_forever()


def install_abort_guard() -> None:
    """Route ggml aborts through _on_ggml_abort (once per process; only once RPC is used)."""
    with _FATAL.lock:
        if _FATAL.installed:
            return
        fn = _set_abort_function()
        if fn is None:
            raise RpcUnavailableError(
                "this llama.cpp build does not export ggml_set_abort_callback, which specchat "
                f"needs to survive a lost RPC server; {REBUILD_HINT}"
            )
        fn(_on_ggml_abort)
        _FATAL.installed = True


# ---- the runner: llama.cpp calls that talk to servers, on a thread the caller can give up on --


@dataclass
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    done: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    result: Any = None
    error: BaseException | None = None


class RpcRunner:
    """One thread that runs a model's llama.cpp calls that may talk to its RPC servers."""

    def __init__(self, endpoints: Sequence[str]) -> None:
        self.endpoints = tuple(endpoints)
        self.broken: RpcConnectionError | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="specchat-rpc", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread once its queued calls are done (a broken runner's never ends)."""
        self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job.result = job.fn(*job.args)
            except BaseException as exc:  # handed to the caller
                job.error = exc
            job.finished = True
            job.done.set()

    def call(
        self,
        fn: Callable[..., Any],
        *args: Any,
        timeout: float | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> Any:
        """fn(*args) on the runner thread; RpcConnectionError when a server fails meanwhile,
        does not answer within `timeout`, or the call is still running GIVE_UP_GRACE_S after
        `give_up()` turned true (a cancel). After that every call fails at once."""
        self.refuse_if_broken()
        job = _Job(fn, args)
        with _FATAL.lock:
            _FATAL.waiters.add(job.done)
            seen = len(_FATAL.messages)
        try:
            self._jobs.put(job)
            reason = self._wait(job, seen, timeout, give_up)
        except BaseException:  # Ctrl+C while waiting: the call may never end, nothing may follow
            self.broken = RpcConnectionError(
                f"interrupted while waiting for RPC server {', '.join(self.endpoints)}"
            )
            raise
        finally:
            with _FATAL.lock:
                _FATAL.waiters.discard(job.done)
        if reason is not None:
            self.broken = RpcConnectionError(reason)
            raise self.broken
        if job.error is not None:
            raise job.error
        return job.result

    def refuse_if_broken(self) -> None:
        """RpcConnectionError when this runner, or a server it uses, has failed already."""
        if self.broken is not None:
            raise self.broken
        dead = [ep for ep in self.endpoints if ep in _FATAL.dead]
        if dead:
            raise RpcConnectionError(
                f"RPC server {', '.join(dead)} failed earlier in this session; restart specchat "
                "to use it again"
            )

    def _wait(
        self, job: _Job, seen: int, timeout: float | None, give_up: Callable[[], bool] | None
    ) -> str | None:
        """None once the job finished; else why it never will."""
        start = time.monotonic()
        next_probe = start + PROBE_AFTER_S
        gave_up_at: float | None = None
        while True:
            job.done.wait(0.5)
            if job.finished:
                return None
            if len(_FATAL.messages) > seen:
                return self._stopped_answering()
            now = time.monotonic()
            if gave_up_at is None and give_up is not None and give_up():
                gave_up_at = now
            reason = None
            if gave_up_at is not None and now - gave_up_at > GIVE_UP_GRACE_S:
                what = f"did not finish a pass within {GIVE_UP_GRACE_S:g} s of the cancel"
                reason = self._unusable(self.endpoints, what)
            elif timeout is not None and now - start > timeout:
                reason = self._unusable(self.endpoints, f"did not answer within {timeout:g} s")
            elif now >= next_probe:
                next_probe = now + PROBE_EVERY_S
                reason = self._probe()
            if reason is not None:
                return reason

    def _probe(self) -> str | None:
        """Why the pass will not end when a server no longer accepts connections, else None."""
        gone = [ep for ep in self.endpoints if not accepts_connections(ep, 3.0)]
        return self._unusable(gone, "is no longer reachable") if gone else None

    def _unusable(self, endpoints: Sequence[str], what: str) -> str:
        _FATAL.dead.update(endpoints)
        return (
            f"RPC server {', '.join(endpoints)} {what}; this model is unusable until specchat "
            "restarts"
        )

    def _stopped_answering(self) -> str:
        """ggml-rpc gave up on a server: name the ones that no longer accept connections."""
        gone = [ep for ep in self.endpoints if not accepts_connections(ep)] or list(self.endpoints)
        return self._unusable(gone, "stopped answering")
