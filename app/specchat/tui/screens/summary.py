"""Per-chat summary: each reply's engine stats and the chat's totals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from specchat.tui.format import DRAFTER_KINDS, kind_figures, kind_value, num, pct

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


KIND_COLUMNS = {kind: f"{kind} acceptance" for kind, _ in DRAFTER_KINDS}
COUNTERS = (
    "generated_tokens",
    "generation_ms",
    "drafted",
    "accepted",
    "target_passes",
    *(f"{kind}_{n}" for kind, _ in DRAFTER_KINDS for n in ("drafted", "accepted")),
)


def totals(all_stats: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """Sums of the engine's counters over the chat's replies."""
    return {k: float(sum(_number(s.get(k)) for s in all_stats)) for k in COUNTERS}


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def kinds_used(all_stats: Sequence[Mapping[str, object]]) -> list[str]:
    """The drafter kinds that drafted in some reply of the chat, suffix first."""
    used = {kind for s in all_stats for kind, _, _ in kind_figures(s)}
    return [kind for kind, _ in DRAFTER_KINDS if kind in used]


def kind_cell(stats: Mapping[str, object], kind: str) -> str:
    """One reply's acceptance for one drafter kind: '86% (12/14)', or '–' when it drafted none."""
    found = [(a, d) for k, a, d in kind_figures(stats) if k == kind]
    return kind_value(*found[0]) if found else "–"


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
        columns = list(COLUMNS)
        columns[5:5] = [KIND_COLUMNS[kind] for kind in self.kinds]
        table.add_columns(*columns)
        for index, s in enumerate(self.all_stats, 1):
            table.add_row(
                str(index),
                num(s.get("generated_tokens")),
                num(s.get("tokens_per_second")),
                pct(s.get("acceptance_rate")),
                f"{s.get('accepted', 0)}/{s.get('drafted', 0)}",
                *(kind_cell(s, kind) for kind in self.kinds),
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
        kinds = "".join(
            f" · {kind} {kind_value(t[f'{kind}_accepted'], t[f'{kind}_drafted'])}"
            for kind in self.kinds
        )
        return (
            f"{len(self.all_stats)} replies · {t['generated_tokens']:.0f} tokens ·"
            f" {speed:.1f} tok/s overall · acceptance {rate * 100:.0f}%"
            f" ({t['accepted']:.0f}/{t['drafted']:.0f}){kinds} · {per_pass:.2f} tok/pass"
        )
