"""A reply's Markdown body, cheaper to stream into than Textual's Markdown.

Textual's Markdown.append re-parses the document's last block on every append and rebuilds it:
a growing code block is re-highlighted whole, a growing list is removed and mounted again (its
every item, bullet and paragraph). While a reply streams that is most of the UI thread's time.
Here, with the same final look:

- the parser is made once, not on every append;
- a code block still open at the end of the text (its closing fence not written yet) is shown
  as plain text; it is highlighted when it closes, or when the stream ends (end_stream());
- a list that grew is updated in place when it can be: the items whose text changed are
  updated, new items are mounted; anything else (a nested block other than a paragraph, a
  changed bullet) rebuilds the list as Textual does."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from markdown_it import MarkdownIt
from markdown_it.token import Token
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Markdown
from textual.widgets._markdown import (  # the block classes: not exported by Textual
    MarkdownBlock,
    MarkdownBullet,
    MarkdownBulletList,
    MarkdownFence,
    MarkdownOrderedList,
    MarkdownParagraph,
)

_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_CLOSE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")


def ends_in_open_fence(text: str) -> bool:
    """Whether the text ends inside a fenced code block (CommonMark fences at the start of a
    line, roughly: a fence nested deeper in a list counts too; a wrong guess only changes how
    the block looks until the stream ends)."""
    fence: str | None = None
    for line in text.split("\n"):
        if fence is None:
            opening = _OPEN.match(line)
            if opening and not (opening[1][0] == "`" and "`" in opening[2]):
                fence = opening[1]
        elif (closing := _CLOSE.match(line)) and (
            closing[1][0] == fence[0] and len(closing[1]) >= len(fence)
        ):
            fence = None
    return fence is not None


class LiveFence(MarkdownFence):
    """A code block, shown as plain text while it is still open at the end of a stream."""

    def __init__(self, markdown: Markdown, token: Token, code: str) -> None:
        self.plain = bool(getattr(markdown, "open_fence", False))
        if not self.plain:
            super().__init__(markdown, token, code)
            return
        MarkdownBlock.__init__(self, markdown, token)  # MarkdownFence's, but not highlighted
        self.code, self.lexer = code, token.info
        self._highlighted_code = Content(code)
        self.auto_links = False

    def notify_style_update(self) -> None:
        if self.plain:  # MarkdownFence's highlights the code again (on mount, theme changes)
            MarkdownBlock.notify_style_update(self)
        else:
            super().notify_style_update()

    def highlight_now(self) -> None:
        """The plain block, highlighted (the stream ended)."""
        if self.plain:
            self.plain = False
            self._highlighted_code = self.highlight(
                self.code,
                self.lexer,
                ansi=self.app.native_ansi_color,
                dark=self.app.current_theme.dark,
            )
            self.set_content(self._highlighted_code)

    def _copy_context(self, block: MarkdownBlock) -> None:
        super()._copy_context(block)
        if isinstance(block, LiveFence):
            self.plain = block.plain


def _paragraphs(column: Widget) -> list[Widget]:
    return list(column.children) if column.is_attached else list(column._pending_children)


def _same(old: Widget, new: Widget) -> bool:
    if isinstance(old, MarkdownParagraph) and isinstance(new, MarkdownParagraph):
        return old._content.plain == new._content.plain and list(old._content.spans) == list(
            new._content.spans
        )
    return False


class _LiveList:
    """A list that a longer version of itself updates in place (see the module's doc). A
    mixin, not a widget: a widget's CSS comes down its first base only (Textual's rule), here
    the Textual list class."""

    children: Sequence[Widget]
    _copy_context: Callable[[MarkdownBlock], None]
    mount_all: Callable[..., Awaitable[None]]

    async def _update_from_block(self, block: MarkdownBlock) -> None:
        if type(block) is type(self):
            saved = list(block._blocks)
            rows = list(block.compose())  # the new rows, not mounted: Horizontal(bullet, column)
            if await self._update_rows(rows):
                self._copy_context(block)
                return
            block._blocks[:] = saved  # composed again when mounted
        await super()._update_from_block(block)  # type: ignore[misc]

    async def _update_rows(self, rows: Sequence[Widget]) -> bool:
        """Update the mounted rows from the new ones; False (nothing changed) when the list
        cannot be updated in place."""
        old_rows = list(self.children)
        if len(rows) < len(old_rows):
            return False
        changes: list[tuple[Widget, list[Widget], list[Widget]]] = []
        for old, new in zip(old_rows, rows, strict=False):
            old_parts, new_parts = list(old.children), list(new._pending_children)
            if len(old_parts) != 2 or len(new_parts) != 2:
                return False
            old_bullet, old_column = old_parts
            new_bullet, new_column = new_parts
            if not (
                isinstance(old_bullet, MarkdownBullet) and isinstance(new_bullet, MarkdownBullet)
            ):
                return False
            if old_bullet.symbol != new_bullet.symbol:
                return False
            old_blocks, new_blocks = list(old_column.children), _paragraphs(new_column)
            kinds = (*old_blocks, *new_blocks)
            if len(old_blocks) > len(new_blocks) or not all(
                isinstance(b, MarkdownParagraph) for b in kinds
            ):
                return False
            changes.append((old_column, old_blocks, new_blocks))
        for column, old_blocks, new_blocks in changes:
            for old_block, new_block in zip(old_blocks, new_blocks, strict=False):
                if not _same(old_block, new_block):
                    assert isinstance(old_block, MarkdownBlock)
                    assert isinstance(new_block, MarkdownBlock)
                    await old_block._update_from_block(new_block)
            if len(new_blocks) > len(old_blocks):
                await column.mount_all(new_blocks[len(old_blocks) :])
        if len(rows) > len(old_rows):
            await self.mount_all(rows[len(old_rows) :])
        return True


class LiveBulletList(_LiveList, MarkdownBulletList):
    pass


class LiveOrderedList(_LiveList, MarkdownOrderedList):
    pass


class BodyStream:
    """Writes a streamed reply into its body; unlike Textual's MarkdownStream (a task that
    appends later), write() returns once the text is in the body, so that a batch's text, its
    status bar and the rest change in one screen update (the caller's batch_update)."""

    def __init__(self, body: Markdown) -> None:
        self.body = body

    async def write(self, fragment: str) -> None:
        if fragment:
            await self.body.append(fragment)

    async def stop(self) -> None:
        """Nothing is pending: every write was awaited."""


class LiveMarkdown(Markdown):
    """A Markdown body for a streamed reply (see the module's doc)."""

    BLOCKS: ClassVar[dict[str, type[MarkdownBlock]]] = {
        **Markdown.BLOCKS,
        "bullet_list_open": LiveBulletList,
        "ordered_list_open": LiveOrderedList,
        "fence": LiveFence,
        "code_block": LiveFence,
    }

    def __init__(self, markdown: str | None = None, **kwargs: Any) -> None:
        super().__init__(markdown, parser_factory=self._parser, **kwargs)
        self.open_fence = False  # while streaming: the text ends inside a code block
        self._gfm = MarkdownIt("gfm-like")

    def _parser(self) -> MarkdownIt:
        return self._gfm

    def stream_text(self, text: str) -> None:
        """The whole text written so far (before its last part is appended)."""
        self.open_fence = ends_in_open_fence(text)

    def end_stream(self) -> None:
        """Every code block highlighted (one still open when the stream ended included)."""
        self.open_fence = False
        for fence in self.query(LiveFence):
            fence.highlight_now()
