"""Per-chat summary: each reply's engine stats and the chat's totals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from specchat.stats_format import kinds_used, summary_columns, summary_row, totals_line


class SummaryScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss(None)", "Close", show=False)
    ]

    def __init__(self, title: str, all_stats: Sequence[Mapping[str, object]]) -> None:
        super().__init__(classes="dialog-screen")
        self.chat_title, self.all_stats = title, list(all_stats)
        self.kinds = kinds_used(self.all_stats)  # per-kind columns only when a kind drafted

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"Summary · {self.chat_title}", classes="dialog-title")
            yield DataTable(id="summary-table", cursor_type="row", zebra_stripes=True)
            yield Label(self._totals_line(), id="summary-totals")
            yield Label("Esc closes", classes="dialog-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*summary_columns(self.kinds))
        for index, s in enumerate(self.all_stats, 1):
            table.add_row(*summary_row(index, s, self.kinds))

    def _totals_line(self) -> str:
        if not self.all_stats:
            return "No finished replies in this chat yet."
        return totals_line(self.all_stats)
