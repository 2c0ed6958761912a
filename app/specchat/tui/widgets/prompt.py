"""The prompt: Enter sends; Shift+Enter and Ctrl+J insert a newline. It may hold the last prompt
sent, being edited: then Enter resends it in its place."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea

PROMPT_HINT = "Enter send · Shift+Enter/Ctrl+J newline · Esc stop · Ctrl+P commands"
EDIT_HINT = "Editing your last prompt: Enter resends it (the reply is replaced) · Esc cancels"


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
        self.border_subtitle = PROMPT_HINT
        self.editing_from: int | None = None  # the user message being edited: sending replaces it

    def start_editing(self, message_id: int, text: str) -> None:
        """Hold a prompt sent before, to resend it changed (the screen replaces what followed)."""
        self.editing_from = message_id
        self.text = text
        self.border_subtitle = EDIT_HINT
        self.move_cursor(self.document.end)
        self.focus()

    def reset_prompt(self) -> None:
        """Empty, with the usual hint: after a send, or when an edit is given up."""
        self.clear()
        self.border_subtitle = PROMPT_HINT

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
