"""Stopping a download between chunks: the bytes already fetched stay for the next run."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from specchat.errors import DownloadError

CANCEL_CHUNK = 1 << 20  # bytes read between two looks at the cancel event

# (file name, bytes in the file so far, total bytes or None): a front end's progress display
ProgressSink = Callable[[str, int, "int | None"], None]
_sinks = threading.local()


@contextmanager
def reporting(sink: ProgressSink) -> Iterator[None]:
    """Downloads on this thread report their progress to sink while the block runs."""
    previous = getattr(_sinks, "sink", None)
    _sinks.sink = sink
    try:
        yield
    finally:
        _sinks.sink = previous


def report(name: str, done: int, total: int | None) -> None:
    sink: ProgressSink | None = getattr(_sinks, "sink", None)
    if sink is not None:
        sink(name, done, total)


class DownloadCancelled(DownloadError):
    """The user stopped a download; what was fetched is kept and the next run resumes it."""


def cancelled(name: str) -> DownloadCancelled:
    return DownloadCancelled(
        f"download of {name} cancelled; what was fetched is kept and the next download resumes it"
    )


def check(cancel: threading.Event | None, name: str) -> None:
    if cancel is not None and cancel.is_set():
        raise cancelled(name)


class CancellableWriter:
    """A binary file whose write() raises DownloadCancelled once cancel is set (the chunk that
    would have been written is not: the file ends on a chunk already written whole)."""

    def __init__(
        self, file: IO[bytes], cancel: threading.Event | None, name: str, total: int | None = None
    ) -> None:
        self._file, self._cancel, self._name, self._total = file, cancel, name, total
        report(name, file.tell(), total)  # a resumed download starts where it stopped

    def write(self, data: bytes) -> int:
        check(self._cancel, self._name)
        written = self._file.write(data)
        report(self._name, self._file.tell(), self._total)
        return written

    def __getattr__(self, attr: str) -> Any:  # tell, seek, truncate, flush...
        return getattr(self._file, attr)
