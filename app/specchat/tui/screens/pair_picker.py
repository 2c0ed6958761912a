"""Choose a model pair from the registry."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from specchat.tui.loader import PairOption


def _prompt(pair: PairOption, current: str | None) -> Content:
    mark = "● " if pair.name == current else "  "
    title = Content.styled(mark + pair.name, "bold")
    if pair.description:
        title += Content("  " + pair.description)
    draft = pair.draft or "no draft model"
    return title + Content.styled(f"\n    target {pair.target}\n    draft  {draft}", "dim")


class PairPickerScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel", show=False)
    ]

    def __init__(self, pairs: list[PairOption], current: str | None) -> None:
        super().__init__(classes="dialog-screen")
        self.pairs, self.current = pairs, current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Model pair (Enter loads it · Esc cancels)", classes="dialog-title")
            yield OptionList(
                *(Option(_prompt(p, self.current), id=p.name) for p in self.pairs),
                id="pair-list",
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
