"""A chat-history failure inside a UI handler becomes one error notification, not a crash.

Handlers read and write the store before they change the screen, so a failed call leaves what
is on screen as it was; the app keeps running and the user can try again."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

from specchat.store import HistoryError

F = TypeVar("F", bound=Callable[..., Any])


class ShowsHistoryErrors(Protocol):
    def history_failed(self, exc: HistoryError) -> None: ...


def keeps_running(method: F) -> F:
    """Decorate a screen's handler or action: a HistoryError in it is shown, not raised."""
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def run_async(self: ShowsHistoryErrors, *args: Any, **kwargs: Any) -> Any:
            try:
                return await cast(Callable[..., Awaitable[Any]], method)(self, *args, **kwargs)
            except HistoryError as exc:
                self.history_failed(exc)
                return None

        return cast(F, run_async)

    @functools.wraps(method)
    def run(self: ShowsHistoryErrors, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except HistoryError as exc:
            self.history_failed(exc)
            return None

    return cast(F, run)
