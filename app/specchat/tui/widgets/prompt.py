"""The prompt: Enter sends; Shift+Enter and Ctrl+J insert a newline."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea


class PromptInput(TextArea):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Send", id="prompt.send", priority=True),
        Binding("shift+enter,ctrl+j", "newline", "Newline", id="prompt.newline", priority=True),
    ]

    class Submitted(Message):
        def __init__(self, prompt: PromptInput, text: str) -> None:
            super().__init__()
            self.prompt, self.text = prompt, text

    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            show_line_numbers=False,
            soft_wrap=True,
            placeholder="Message the model…",
            **kwargs,  # type: ignore[arg-type]
        )

    # Priority bindings run as soon as the app reads the key, while keys typed just before
    # may still wait in this widget's queue (fast typists, pastes without bracketed paste,
    # tmux send-keys). call_later queues the action behind them, so "hi<Enter>" sends "hi".
    def action_submit(self) -> None:
        self.call_later(self._submit)

    def action_newline(self) -> None:
        self.call_later(self.insert, "\n")

    def _submit(self) -> None:
        if self.text.strip():
            self.post_message(self.Submitted(self, self.text))
