"""The scrolling list of messages. Follows a streaming reply unless the user scrolls up."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Markdown

from specchat.store.records import MessageRecord
from specchat.tui.widgets.message import MessageBox


class ChatView(VerticalScroll, can_focus=False):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.origin_mode = False

    async def show_messages(self, records: list[MessageRecord], welcome: str = "") -> None:
        await self.remove_children()
        if not records and welcome:
            await self.mount(Markdown(welcome, id="welcome"))
        boxes = [MessageBox(r, self.origin_mode) for r in records if r.role != "system"]
        if boxes:
            await self.mount_all(boxes)
        self.follow()

    async def add_message(self, record: MessageRecord) -> MessageBox:
        for welcome in self.query("#welcome"):
            await welcome.remove()
        box = MessageBox(record, self.origin_mode)
        await self.mount(box)
        self.follow()
        return box

    def follow(self) -> None:
        """Stick to the bottom (until the user scrolls away)."""
        self.anchor()

    def boxes(self) -> list[MessageBox]:
        return list(self.query(MessageBox))

    def box(self, message_id: int) -> MessageBox | None:
        return next((b for b in self.boxes() if b.message_id == message_id), None)

    def set_origin_mode(self, on: bool) -> None:
        self.origin_mode = on
        for box in self.boxes():
            box.set_origin_mode(on)
