"""The sidebar's chat list: the history's chats, or those a search finds (each with a snippet of
its matching message), the open one highlighted; and a found message brought into view."""

from __future__ import annotations

from collections.abc import Callable

from textual.screen import Screen
from textual.widgets import Input

from specchat.store import ChatRecord, ChatStore, HistoryError
from specchat.tui.widgets import ChatList, ChatView


class ChatBrowser:
    """No state of its own: the search box holds the search, the history the chats."""

    def __init__(
        self, screen: Screen[None], store: ChatStore, history_failed: Callable[[HistoryError], None]
    ) -> None:
        self._store, self._history_failed = store, history_failed
        self._search = screen.query_one("#chat-search", Input)
        self._list = screen.query_one(ChatList)
        self._view = screen.query_one(ChatView)

    def refresh(self, current: ChatRecord | None) -> None:
        """When the history cannot be read the list stays as it was, and says why."""
        search = self._search.value
        try:
            chats = self._store.list_chats(search)
            matches = self._store.first_matches(search)  # the results' snippets
        except HistoryError as exc:
            self._history_failed(exc)
            return
        self._list.show(chats, current.id if current else None, search, matches)

    async def show_match(self, chat: ChatRecord | None) -> None:
        """Scroll the open chat to its first message containing the search, and focus it."""
        search = self._search.value
        if chat is None or not search.strip():
            return
        message_id = self._store.first_match(chat.id, search)
        if message_id is None:
            return
        box = await self._view.reveal(message_id)
        if box is not None:
            box.focus(scroll_visible=False)
