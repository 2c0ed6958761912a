"""Per-chat summary: each reply's engine stats and the chat's totals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from specchat.tui.format import num, pct

COLUMNS = (
    "#",
    "tokens",
    "tok/s",
    "acceptance",
    "accepted/drafted",
    "tok/pass",
    "TTFT ms",
    "finish",
)


def totals(all_stats: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """Sums of the engine's counters over the chat's replies."""
    keys = ("generated_tokens", "generation_ms", "drafted", "accepted", "target_passes")
    return {k: float(sum(float(s.get(k, 0) or 0) for s in all_stats)) for k in keys}


class SummaryScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss(None)", "Close", show=False)
    ]

    def __init__(self, title: str, all_stats: Sequence[Mapping[str, object]]) -> None:
        super().__init__(classes="dialog-screen")
        self.chat_title, self.all_stats = title, list(all_stats)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"Summary · {self.chat_title}", classes="dialog-title")
            yield DataTable(id="summary-table", cursor_type="row", zebra_stripes=True)
            yield Label(self._totals_line(), id="summary-totals")
            yield Label("Esc closes", classes="dialog-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        for index, s in enumerate(self.all_stats, 1):
            table.add_row(
                str(index),
                num(s.get("generated_tokens")),
                num(s.get("tokens_per_second")),
                pct(s.get("acceptance_rate")),
                f"{s.get('accepted', 0)}/{s.get('drafted', 0)}",
                num(s.get("tokens_per_pass"), 2),
                num(s.get("ttft_ms"), 0),
                str(s.get("finish_reason", "")),
            )

    def _totals_line(self) -> str:
        if not self.all_stats:
            return "No finished replies in this chat yet."
        t = totals(self.all_stats)
        speed = t["generated_tokens"] / (t["generation_ms"] / 1000) if t["generation_ms"] else 0.0
        rate = t["accepted"] / t["drafted"] if t["drafted"] else 0.0
        per_pass = t["generated_tokens"] / t["target_passes"] if t["target_passes"] else 0.0
        return (
            f"{len(self.all_stats)} replies · {t['generated_tokens']:.0f} tokens ·"
            f" {speed:.1f} tok/s overall · acceptance {rate * 100:.0f}%"
            f" ({t['accepted']:.0f}/{t['drafted']:.0f}) · {per_pass:.2f} tok/pass"
        )
