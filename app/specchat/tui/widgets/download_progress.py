"""Download progress of a pair's files: a bar per file with bytes, rate and time left."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import ProgressBar, Static


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def human_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds + 0.5)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"


def sizes(done: int, total: int | None) -> str:
    """Like "2.1 / 6.0 MB" (one unit when both share it), "900.0 kB / 1.2 GB" or "2.1 MB"."""
    if not total:
        return human_bytes(done)
    got, of = human_bytes(done), human_bytes(total)
    if got.split()[-1] == of.split()[-1]:
        return f"{got.split()[0]} / {of}"
    return f"{got} / {of}"


STALLED_AFTER = 5.0  # seconds without a byte before a file is said to be stalled


def progress_line(
    done: int, total: int | None, rate: float, eta: float | None, idle: float = 0.0
) -> str:
    """idle: seconds since the last bytes arrived (a stalled download says so, not a rate)."""
    size = sizes(done, total)
    if total is not None and done >= total:
        return f"{size} · done"
    if idle >= STALLED_AFTER:
        return f"{size} · stalled {human_time(idle)} (Esc cancels)"
    speed = f"{human_bytes(rate)}/s" if rate > 0 else "– /s"
    return f"{size} · {speed} · {human_time(eta)} left"


class FileProgress(Vertical):
    """One file: its name and numbers, then its bar."""

    def __init__(self, name: str, **kwargs: object) -> None:
        super().__init__(classes="download-file", **kwargs)  # type: ignore[arg-type]
        self.file_name = name
        self._last: tuple[int, int | None, float, float | None] | None = None
        self.updated_at = time.monotonic()

    @property
    def finished(self) -> bool:
        return (
            self._last is not None and self._last[1] is not None and self._last[0] >= self._last[1]
        )

    def compose(self) -> ComposeResult:
        with Horizontal(classes="download-head"):
            yield Static(self.file_name, classes="download-name")
            yield Static("", classes="download-numbers")
        yield ProgressBar(show_eta=False, classes="download-bar")

    def on_mount(self) -> None:
        self._apply()

    def show(self, done: int, total: int | None, rate: float, eta: float | None) -> None:
        if self._last is None or done != self._last[0]:
            self.updated_at = time.monotonic()
        self._last = (done, total, rate, eta)
        self._apply()

    def tick(self, now: float) -> None:
        """Called every second while the panel shows: a stall shows up without new bytes."""
        if self._last is not None and now - self.updated_at >= STALLED_AFTER:
            self._apply(now - self.updated_at)

    def _apply(self, idle: float = 0.0) -> None:
        if self._last is None:
            return
        try:
            bar = self.query_one(ProgressBar)
            numbers = self.query_one(".download-numbers", Static)
        except NoMatches:  # not composed yet: shown after the next refresh
            self.call_after_refresh(self._apply)
            return
        done, total, rate, eta = self._last
        bar.update(total=total, progress=done)
        numbers.update(progress_line(done, total, rate, eta, idle))


class DownloadPanel(Vertical):
    """Shown while a load downloads; Esc cancels (the partial file stays for the next run)."""

    DEFAULT_CSS = """
    DownloadPanel { height: auto; border: round $accent; padding: 0 1; }
    DownloadPanel .download-title { height: 1; text-style: bold; }
    DownloadPanel .download-file { height: 2; }
    DownloadPanel .download-head { height: 1; }
    DownloadPanel .download-name { width: auto; max-width: 50%; height: 1; padding-right: 1; }
    DownloadPanel .download-numbers { width: 1fr; height: 1; text-align: right; }
    DownloadPanel .download-bar { height: 1; }
    DownloadPanel .download-bar Bar { width: 1fr; }
    DownloadPanel .download-error { color: $text-error; height: auto; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.files: dict[str, FileProgress] = {}

    def compose(self) -> ComposeResult:
        yield Static("", classes="download-title")
        yield Static("", classes="download-error")

    def on_mount(self) -> None:
        # runs only while files download: every wakeup takes the GIL from the engine thread
        self._timer = self.set_interval(1.0, self._tick, pause=True)

    def _tick(self) -> None:
        if not self.display or all(row.finished for row in self.files.values()):
            self._timer.pause()
            return
        now = time.monotonic()
        for row in self.files.values():
            row.tick(now)

    def start(self, label: str) -> None:
        """A new load: forget the previous files and errors."""
        for row in self.files.values():
            row.remove()
        self.files = {}
        self.query_one(".download-title", Static).update(
            f"Downloading {label} · Esc cancels (what is fetched is kept, resumed next time)"
        )
        self.query_one(".download-error", Static).update("")

    def update_file(
        self, name: str, done: int, total: int | None, rate: float, eta: float | None
    ) -> None:
        row = self.files.get(name)
        if row is None:
            row = self.files[name] = FileProgress(name)
            self.mount(row, before=self.query_one(".download-error"))
            self._timer.resume()
        row.show(done, total, rate, eta)

    @property
    def complete(self) -> bool:
        """Every file shown has all its bytes (a failure now is the load's, not a download's)."""
        return bool(self.files) and all(row.finished for row in self.files.values())

    def fail(self, error: str, cancelled: bool) -> None:
        if cancelled:
            title = "Download cancelled"
            error = "what was fetched is kept; the next load of this pair resumes it (F4)"
        else:
            title = "Download failed"
        self.query_one(".download-title", Static).update(title)
        self.query_one(".download-error", Static).update(f"✖ {error}")
