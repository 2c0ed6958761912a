"""Opening a chat made with another pair: switch to it, or go on with the loaded one."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class SwitchPairScreen(ModalScreen[bool]):
    """Answers True to load the chat's pair, False to continue with the loaded one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "answer(True)", "Switch", show=False),
        Binding("escape,c", "answer(False)", "Continue", show=False),
    ]

    def __init__(self, chat_label: str, loaded_label: str) -> None:
        super().__init__(classes="dialog-screen")
        self.chat_label, self.loaded_label = chat_label, loaded_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                f"This chat was made with {self.chat_label}; {self.loaded_label} is loaded.",
                classes="dialog-title",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"Switch to {self.chat_label} (s)", variant="primary", id="switch")
                yield Button(f"Continue with {self.loaded_label} (c)", id="continue")

    def on_mount(self) -> None:
        self.query_one("#switch", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "switch")

    def action_answer(self, switch: bool) -> None:
        self.dismiss(switch)
