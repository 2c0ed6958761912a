"""The live telemetry bar: engine and models, then this reply's speed and acceptance."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import LoadingIndicator, Sparkline, Static

from specchat.engine.types import EngineInfo, Stats
from specchat.stats_format import live_line
from specchat.tui.format import backend_line, origin_legend

SPARK_POINTS = 4000


class StatusBar(Vertical):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.stats: Stats | None = None
        self.speeds: list[float] = []

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
        self.query_one("#status-spark", Sparkline).data = []
        self.update_stats(None)

    def update_stats(self, stats: Stats | None) -> None:
        self.stats = stats
        self.query_one("#status-live", Static).update(live_line(stats))

    def add_speeds(self, speeds: Sequence[float]) -> None:
        """Tokens/s after each target pass; the sparkline buckets them to its width."""
        if speeds:
            self.speeds.extend(speeds)
            self.query_one("#status-spark", Sparkline).data = self.speeds[-SPARK_POINTS:]

    def set_legend(self, on: bool) -> None:
        legend = origin_legend() if on else Content()
        self.query_one("#status-legend", Static).update(legend)
