"""HistoryError: a read or write of the open chat history failed, as one line the app shows."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from specchat.errors import SpecchatError

P = ParamSpec("P")
R = TypeVar("R")


class HistoryError(SpecchatError):
    """The chat history could not be read or written (locked, disk full, damaged file)."""


class _HasPath(Protocol):
    path: Path
    busy_timeout: float


S = TypeVar("S", bound=_HasPath)


def explain(action: str, exc: sqlite3.Error, path: Path, busy_timeout: float) -> str:
    """One line for the user: what failed, the likely cause, the file."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        why = (
            f"the chat history is locked by another program (waited {busy_timeout:g} s); try again"
        )
    elif "full" in low:
        why = "the disk is full"
    elif "malformed" in low or "not a database" in low or "corrupt" in low:
        why = f"the chat history file is damaged ({text})"
    elif "readonly" in low or "read-only" in low:
        why = "the chat history file is read-only"
    else:
        why = text or type(exc).__name__
    return f"could not {action}: {why} ({path})"


def db_call(
    action: str,
) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], R]]:
    """Turn any sqlite3 error raised by a store method into one HistoryError line."""

    def wrap(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
        @functools.wraps(method)
        def call(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise HistoryError(explain(action, exc, self.path, self.busy_timeout)) from exc

        return call

    return wrap
