"""The live telemetry bar: engine and models, then this reply's speed and acceptance."""

from __future__ import annotations

import time
from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.timer import Timer
from textual.widgets import LoadingIndicator, Sparkline, Static

from specchat.engine.types import EngineInfo, Stats
from specchat.stats_format import live_line
from specchat.tui.format import backend_line, origin_legend

SPARK_POINTS = 4000
# While a reply streams, the live line and the sparkline are redrawn at most this often (each
# redraw costs the UI thread a layout and a render; the numbers change every batch)
LIVE_REFRESH = 0.25


class StatusBar(Vertical):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.stats: Stats | None = None  # the stats shown
        self.speeds: list[float] = []
        self._latest: Stats | None = None  # the latest stats, shown when the bar is redrawn
        self._shown_at = 0.0  # when the live line was last redrawn (time.monotonic())
        self._held: tuple[bool, bool] = (False, False)  # (stats, speeds) not redrawn yet
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="status-engine-row"):
            yield Static("No model loaded", id="status-engine")
            yield Static("", id="status-legend")
        with Horizontal(id="status-live-row"):
            yield Static(live_line(None), id="status-live")
            yield Sparkline([], id="status-spark")

    @property
    def loading(self) -> bool:
        return bool(self.query("#status-loading"))

    def _set_loading(self, on: bool) -> None:
        # mounted only while loading: its animation timer would wake the UI 16 times a second
        if on and not self.loading:
            row = self.query_one("#status-engine-row")
            row.mount(LoadingIndicator(id="status-loading"), before=0)
        elif not on:
            self.query("#status-loading").remove()

    def show_loading(self, label: str) -> None:
        self._set_loading(True)
        self._engine(Content(f"Loading {label}… (the app stays usable)"))

    def show_ready(self, label: str, info: EngineInfo) -> None:
        self._set_loading(False)
        prefix = Content.styled(label + " · ", "bold") if label.startswith("pair ") else Content()
        self._engine(prefix + Content(backend_line(info)))

    def show_failed(self, label: str, error: str) -> None:
        self._set_loading(False)
        self._engine(Content.styled(f"✖ {label} failed to load: {error}", "$text-error"))

    def _engine(self, content: Content) -> None:
        self.query_one("#status-engine", Static).update(content)

    def start_reply(self) -> None:
        self.speeds = []
        self._held = (False, True)
        self.update_stats(None)

    def update_stats(self, stats: Stats | None) -> None:
        """Show these stats (and the speeds held back) now."""
        self._latest = stats
        self._held = (True, self._held[1])
        self.show_held()

    def stream(self, stats: Stats | None, speeds: Sequence[float]) -> None:
        """A streaming reply's latest stats (None: unchanged) and the tokens/s after each of
        its target passes (the sparkline buckets them to its width): redrawn at most every
        LIVE_REFRESH seconds, with a later batch; what is held back is drawn by a timer when
        no batch comes, or by show_held()."""
        if stats is not None:
            self._latest = stats
        self.speeds.extend(speeds)
        self._held = (self._held[0] or stats is not None, self._held[1] or bool(speeds))
        if self._held == (False, False):
            return
        wait = self._shown_at + LIVE_REFRESH - time.monotonic()
        if wait <= 0:
            self.show_held()
        elif self._timer is None:  # drawn with a later batch (one screen update), or by this
            self._timer = self.set_timer(wait + LIVE_REFRESH, self.show_held)

    def show_held(self) -> None:
        """Draw what stream() held back, now."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        stats, speeds = self._held
        self._held, self._shown_at = (False, False), time.monotonic()
        if stats:
            self.stats = self._latest
            self.query_one("#status-live", Static).update(live_line(self.stats))
        if speeds:
            self.query_one("#status-spark", Sparkline).data = self.speeds[-SPARK_POINTS:]

    def set_legend(self, on: bool) -> None:
        legend = origin_legend() if on else Content()
        self.query_one("#status-legend", Static).update(legend)
