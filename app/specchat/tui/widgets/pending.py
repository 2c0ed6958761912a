"""A message typed while the pair loads: shown as pending, sent when the pair is ready."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class PendingMessage(Static):
    DEFAULT_CSS = """
    PendingMessage { height: auto; border: round $secondary; padding: 0 1; }
    PendingMessage.-failed { border: round $error; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.text = ""

    def wait(self, text: str, label: str) -> None:
        self.text = text
        self.remove_class("-failed")
        self.border_title = "pending"
        self.update(
            Content(text)
            + Content.styled(f"\n⏳ sent when {label} is ready (Esc stops loading)", "dim")
        )

    def fail(self, label: str, error: str) -> None:
        """The load failed: the text stays here and in the prompt, with the reason."""
        self.add_class("-failed")
        self.border_title = "not sent"
        self.update(
            Content(self.text)
            + Content.styled(f"\n✖ not sent: {label} could not be loaded: {error}", "$text-error")
            + Content.styled("\nYour text is back in the prompt; F4 picks a pair.", "dim")
        )
