"""The sidebar: search box, new-chat button, list of chats."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Button, Input, OptionList
from textual.widgets.option_list import Option

from specchat.store.records import ChatRecord


class ChatList(OptionList):
    def show(self, chats: list[ChatRecord], current: int | None) -> None:
        self.clear_options()
        self.add_options([Option(c.title, id=str(c.id)) for c in chats])
        if current is not None:
            for index, chat in enumerate(chats):
                if chat.id == current:
                    self.highlighted = index


class Sidebar(Vertical):
    def compose(self) -> ComposeResult:
        yield Button("+ New chat", id="new-chat", variant="primary", compact=True)
        yield Input(placeholder="Search chats…", id="chat-search", compact=True)
        yield ChatList(id="chat-list")
