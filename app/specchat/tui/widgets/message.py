"""One chat message: Markdown body (streamed), optional origin colouring, final stats."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Collapsible, Label, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from specchat.store.records import MessageRecord, MessageStatus
from specchat.tui.format import ORIGIN_STYLES, stats_table, summary_line

ROLE_LABEL = {"user": "You", "assistant": "Assistant", "system": "System"}
STATUS_BADGE = {
    MessageStatus.STREAMING: "streaming…",
    MessageStatus.CANCELLED: "cancelled",
    MessageStatus.INCOMPLETE: "incomplete (interrupted)",
    MessageStatus.ERROR: "error",
}


def merge_segments(segments: list[list[str]], tokens: Iterable[tuple[str, str]]) -> None:
    """Append (text, origin) tokens to runs of equal origin, in place."""
    for text, origin in tokens:
        if not text:
            continue
        if segments and segments[-1][1] == origin:
            segments[-1][0] += text
        else:
            segments.append([text, origin])


def origin_content(segments: Sequence[Sequence[str]]) -> Content:
    return Content.assemble(*((text, ORIGIN_STYLES.get(origin, "")) for text, origin in segments))


def _hard_breaks(text: str) -> str:
    return re.sub(r"(?<!\n)\n(?!\n)", "  \n", text)


class MessageBox(Vertical, can_focus=True):
    """A message. Focus it and press c to copy it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy message", id="message.copy")
    ]

    def __init__(self, record: MessageRecord, origin_mode: bool = False) -> None:
        super().__init__(classes=f"message {record.role}")
        self.message_id = record.id
        self.role = record.role
        self.text = record.content
        self.status = record.status
        self.stats: Mapping[str, object] | None = record.stats
        self.notices: list[str] = list(record.notices)
        self.segments: list[list[str]] = [list(s) for s in record.segments]
        self.origin_mode = origin_mode
        self._stream: MarkdownStream | None = None

    def compose(self) -> ComposeResult:
        yield Label(self._header_text(), classes="message-header")
        # a user's line breaks are kept (as Markdown hard breaks); replies follow CommonMark
        shown = _hard_breaks(self.text) if self.role == "user" else self.text
        yield Markdown(shown, classes="message-body")
        if self.role == "assistant":
            yield Static(origin_content(self.segments), classes="message-origins")
            yield Static("\n".join(self.notices), classes="message-notices")

    def on_mount(self) -> None:
        self._apply_origin_mode()
        self._show_notices()
        if self.stats is not None:
            self.mount(self._stats_widget())

    # streaming ---------------------------------------------------------------------------
    def start_stream(self) -> None:
        self._stream = Markdown.get_stream(self.query_one(".message-body", Markdown))

    async def append(self, tokens: Sequence[tuple[str, str]]) -> str:
        text = "".join(t for t, _ in tokens)
        self.text += text
        merge_segments(self.segments, tokens)
        if self._stream is not None and text:
            await self._stream.write(text)
        if self.origin_mode:
            self._apply_origin_mode()
        return text

    async def finish(
        self,
        text: str,
        status: MessageStatus,
        stats: Mapping[str, object] | None,
        notices: Sequence[str] = (),
    ) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if text != self.text:
            self.text = text
            await self.query_one(".message-body", Markdown).update(text)
        self.status, self.stats = status, stats
        self.notices.extend(notices)
        self.query_one(".message-header", Label).update(self._header_text())
        self._show_notices()
        if stats is not None:
            await self.mount(self._stats_widget())

    def add_notice(self, notice: str) -> None:
        self.notices.append(notice)
        self._show_notices()

    # origin colouring --------------------------------------------------------------------
    def set_origin_mode(self, on: bool) -> None:
        self.origin_mode = on
        self._apply_origin_mode()

    def _apply_origin_mode(self) -> None:
        if self.role != "assistant":
            return
        coloured = self.origin_mode and bool(self.segments)
        origins = self.query_one(".message-origins", Static)
        if coloured:
            origins.update(origin_content(self.segments))
        origins.display = coloured
        self.query_one(".message-body", Markdown).display = not coloured

    # helpers -----------------------------------------------------------------------------
    def _header_text(self) -> Content:
        badge = STATUS_BADGE.get(self.status)
        if badge is None and self.stats and self.stats.get("finish_reason") == "length":
            badge = "stopped at max tokens"
        header = Content.styled(ROLE_LABEL.get(self.role, self.role), "bold")
        if badge:
            style = "$text-error" if self.status is MessageStatus.ERROR else "$text-warning"
            header = header + Content("  ") + Content.styled(f"[{badge}]", style)
        return header

    def _show_notices(self) -> None:
        if self.role != "assistant":
            return
        notices = self.query_one(".message-notices", Static)
        notices.update("\n".join(f"⚠ {n}" for n in self.notices))
        notices.display = bool(self.notices)

    def _stats_widget(self) -> Collapsible:
        assert self.stats is not None
        rows = stats_table(self.stats)
        width = max(len(label) for label, _ in rows)
        table = "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
        return Collapsible(
            Static(table, classes="stats-table"),
            title=summary_line(self.stats),
            collapsed=True,
            classes="message-stats",
        )

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify("Message copied to the clipboard", timeout=2)
