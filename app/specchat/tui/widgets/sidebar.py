"""The sidebar: search box, new-chat button, list of chats (while searching: each chat with a
snippet of its first message that matches, the matched words highlighted)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Button, Input, OptionList
from textual.widgets.option_list import Option

from specchat.store.records import ChatRecord

SNIPPET_BEFORE = 12  # characters of context shown before the match (at most)
SNIPPET_LENGTH = 44  # characters of a snippet (more when the match itself is longer)
MATCH_STYLE = "bold reverse"
SNIPPET_STYLE = "$text-muted"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _highlighted(text: str, search: str, style: str = "") -> Content:
    """`text` with every occurrence of `search` (any case) highlighted."""
    content = Content.styled(text, style) if style else Content(text)
    pattern = re.compile(re.escape(search), re.IGNORECASE)
    return content.highlight_regex(pattern, style=MATCH_STYLE)


def snippet(text: str, search: str) -> Content | None:
    """A short excerpt of `text` (on one line) around the first occurrence of `search` (any
    case), from a word's start to a word's end, with … where text is left out and the matches
    highlighted; None when `search` does not occur."""
    flat, needle = _flat(text), _flat(search)
    at = flat.lower().find(needle.lower()) if needle else -1
    if at < 0:
        return None
    start = max(at - SNIPPET_BEFORE, 0)
    if start > 0:  # begin at a word
        space = flat.find(" ", start, at)
        start = space + 1 if space >= 0 else start
    end = min(max(start + SNIPPET_LENGTH, at + len(needle)), len(flat))
    if end < len(flat):  # end at a word
        space = flat.rfind(" ", at + len(needle), end + 1)
        end = space if space >= 0 else end
    excerpt = ("…" if start > 0 else "") + flat[start:end] + ("…" if end < len(flat) else "")
    return _highlighted(excerpt, needle, SNIPPET_STYLE)


def search_prompt(title: str, search: str, content: str | None) -> Content:
    """A search result: the title (matches highlighted) and, below, a snippet of the first
    message that matches."""
    prompt = _highlighted(title, _flat(search))
    found = snippet(content, search) if content is not None else None
    return prompt if found is None else Content.assemble(prompt, "\n", found)


class ChatList(OptionList):
    def show(
        self,
        chats: list[ChatRecord],
        current: int | None,
        search: str = "",
        matches: Mapping[int, str] | None = None,
    ) -> None:
        """The chats; with a search, each with the snippet of its matching message (`matches`:
        chat id → that message's text)."""
        found = matches or {}
        self.clear_options()
        self.add_options(
            [
                Option(
                    search_prompt(c.title, search, found.get(c.id)) if search.strip() else c.title,
                    id=str(c.id),
                )
                for c in chats
            ]
        )
        if current is not None:
            for index, chat in enumerate(chats):
                if chat.id == current:
                    self.highlighted = index


class Sidebar(Vertical):
    def compose(self) -> ComposeResult:
        yield Button("+ New chat", id="new-chat", variant="primary", compact=True)
        yield Input(placeholder="Search chats…", id="chat-search", compact=True)
        yield ChatList(id="chat-list")
