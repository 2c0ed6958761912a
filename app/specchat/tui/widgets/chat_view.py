"""The scrolling list of messages. Follows a streaming reply unless the user scrolls up.

Long chats open fast: only a window of messages is mounted. A chat opens on its newest
FIRST_PAGE messages (more if they do not fill the view); then, in idle time, older ones are
mounted STEP at a time (each step a short pause of the UI, keys handled between steps) until
AHEAD screens of them are above the view; scrolling up keeps that margin, and messages far
below the view are unmounted again (every mounted widget slows each later mount). Search
jumping to an old message shows a window around it instead, and newer ones are mounted the
same way as the user scrolls down; a new message brings the view back to the newest ones.

Only the messages on screen are mounted in full at first (as many as fill the view, by an
estimate of their height); the others are mounted light (their plain text, see MessageBox) and
made full in idle time, one per step, when they come within NEAR screens of the view (the
nearest first): paging up shows messages already made full, or their plain text for the moment
it takes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static

from specchat.store.records import MessageRecord, MessageStatus
from specchat.tui.widgets.message import MessageBox

FIRST_PAGE = 8  # messages mounted when a chat opens
PAGE = 10  # older messages mounted at once when short ones do not fill the view
STEP = 4  # light messages mounted (or unmounted, or made light) per idle-time step
STEP_DELAY = 0.01  # seconds between steps: input and repaints go in between
AHEAD = 3  # screens of messages kept mounted above (and below) the view
BEFORE_MATCH = 2  # messages shown above one that search jumps to
NEAR = 1  # screens above and below the view within which light messages are made full
FAR = 2  # screens above or below the view beyond which full messages are made light again
FIT_MARGIN = 4  # rows beyond the view's height mounted in full when a chat opens


class ChatView(VerticalScroll, can_focus=False):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.origin_mode = False
        self.older: list[MessageRecord] = []  # before the mounted window, oldest first
        self.newer: list[MessageRecord] = []  # after the mounted window (after a search jump)
        self.variants: dict[int, tuple[int, int]] = {}  # reply id: (shown, of)
        self._mounting = False
        self._step_scheduled = False
        self._hold: tuple[MessageBox, int] | None = None  # (top message in view, its offset)
        self._restoring = False
        self._unfolded: dict[int, set[str]] = {}  # message id: its parts the user unfolded

    async def show_messages(
        self,
        records: list[MessageRecord],
        welcome: str = "",
        variants: dict[int, tuple[int, int]] | None = None,
    ) -> None:
        self.variants = dict(variants or {})
        shown = [r for r in records if r.role != "system"]
        start = max(len(shown) - FIRST_PAGE, 0)
        full = self._fitting(reversed(shown[start:]))  # the newest: at the bottom of the view
        await self._show_window(shown, start, len(shown), welcome, full)
        self.follow()
        self.call_after_refresh(self._fill_view)

    async def _show_window(
        self,
        shown: list[MessageRecord],
        start: int,
        end: int,
        welcome: str = "",
        full: frozenset[int] = frozenset(),
    ) -> None:
        """Mount shown[start:end] (the ids in `full` in full, the others light)."""
        self._mounting = True  # no page mounts (scheduled by scrolling) while it is rebuilt
        try:
            await self.remove_children()
            self.older, window, self.newer = shown[:start], shown[start:end], shown[end:]
            if not shown and welcome:
                await self.mount(Markdown(welcome, id="welcome"))
            await self.mount(Static("", id="older-marker"))
            self._update_marker()
            if window:
                await self.mount_all([self._box(r, r.id not in full) for r in window])
        finally:
            self._mounting = False

    def _view_size(self) -> tuple[int, int]:
        """The view's (width, height) for the text; before the first layout, the app's."""
        if self.size.height > 0:
            return self.size.width, self.size.height
        return self.app.size.width, self.app.size.height

    def _fitting(self, records: Iterable[MessageRecord]) -> frozenset[int]:
        """The ids of the first `records` that fill the view (by estimate), and a margin."""
        width, height = self._view_size()
        full: set[int] = set()
        rows = 0
        for record in records:
            if rows >= height + FIT_MARGIN:
                break
            full.add(record.id)
            rows += estimated_rows(record, max(width - 6, 10))
        return frozenset(full)

    def _all(self) -> list[MessageRecord]:
        """Every message of the chat: the older ones, the mounted ones, the newer ones."""
        return [*self.older, *(b.record() for b in self.boxes()), *self.newer]

    async def _fill_view(self) -> None:
        """Short messages may not fill the view (nothing to scroll up with): mount more. Then
        the older ones come in idle time."""
        if self.older and self.max_scroll_y <= 0:
            await self.mount_older(PAGE, keep_view=False)
            self.call_after_refresh(self._fill_view)
        else:
            self._schedule_step()

    def _screens(self, count: float) -> float:
        return count * max(self.size.height, 1)

    def _wants_older(self) -> bool:
        """Fewer than AHEAD screens of mounted messages above the view, and more to mount."""
        return bool(self.older) and self.scroll_y < self._screens(AHEAD)

    def _wants_newer(self) -> bool:
        """Fewer than AHEAD screens of mounted messages below the view, and more to mount."""
        return bool(self.newer) and self.max_scroll_y - self.scroll_y < self._screens(AHEAD)

    def _far_below(self) -> list[MessageBox]:
        """Mounted messages more than AHEAD + 1 screens below the view (so many widgets slow
        every later mount), unless one of them streams or has the focus."""
        limit = self.scroll_y + self._screens(AHEAD + 2)
        far = [b for b in self.boxes() if b.virtual_region.y > limit]
        if any(b.status is MessageStatus.STREAMING or b.has_focus_within for b in far):
            return []
        return far

    def _gaps(self, light: bool) -> list[tuple[float, MessageBox]]:
        """(rows between it and the view, 0 when in it; message) for the light (or full)
        messages laid out."""
        top, bottom = self.scroll_y, self.scroll_y + self._screens(1)
        return [
            (max(top - b.virtual_region.bottom, b.virtual_region.y - bottom, 0), b)
            for b in self.boxes()
            if b.light == light and b.virtual_region.height > 0
        ]

    def _light_near(self, near: float = NEAR) -> MessageBox | None:
        """The light message nearest the view (in it first), within `near` screens of it."""
        near_ones = [(gap, b) for gap, b in self._gaps(True) if gap <= self._screens(near)]
        return min(near_ones, key=lambda pair: pair[0])[1] if near_ones else None

    def _full_far(self) -> list[MessageBox]:
        """The full messages beyond FAR screens from the view that can be made light, the
        farthest first."""
        far = [
            (gap, b) for gap, b in self._gaps(False) if gap > self._screens(FAR) and b.can_lighten()
        ]
        return [b for _, b in sorted(far, key=lambda pair: -pair[0])]

    def _schedule_step(self) -> None:
        if self._step_scheduled:
            return
        wanted = self._wants_older() or self._wants_newer() or self._far_below()
        if wanted or self._light_near() is not None or self._full_far():
            self._step_scheduled = True
            self.set_timer(STEP_DELAY, self._step)

    async def _step(self) -> None:
        """One idle-time step: a light message in (or near) the view made full, or the ones far
        below unmounted, or STEP older (or newer) messages mounted; the next step scheduled once
        the view is laid out again."""
        self._step_scheduled = False
        if self.app._exit or self._closing:  # nothing more mounted while the app closes
            return
        if not self._mounting:
            if light := self._light_near(0):  # first: what the user sees
                await self._realize(light)
            elif far := self._far_below():  # then: each mounted widget slows later steps
                self._unmount_below(far[-STEP:])  # the lowest ones
                return  # the next step once they are gone
            elif light := self._light_near():  # what the user will see next
                await self._realize(light)
            elif full := self._full_far():  # fewer widgets: each slows every layout
                await self._lighten(full[:STEP])
            elif self._wants_older():
                await self.mount_older(STEP)
            elif self._wants_newer():
                await self.mount_newer(STEP)
        self.call_after_refresh(self._schedule_step)

    def _unmount_below(self, far: list[MessageBox]) -> None:
        """Back to `newer`; removed by a worker (awaiting the removal here would wait on this
        widget's own message queue)."""
        self._mounting = True
        self.newer = [*(b.record() for b in far), *self.newer]

        async def remove() -> None:
            try:
                await self.remove_children(far)
            finally:
                self._mounting = False
                self.call_after_refresh(self._schedule_step)

        self.run_worker(remove(), group="unmount")

    @contextmanager
    def _reshaping(self) -> Iterator[None]:
        """Messages change shape inside: no other step meanwhile, and the view stays put."""
        self._mounting = True
        try:
            self._hold_view()
            yield
        finally:
            self._mounting = False

    async def _realize(self, box: MessageBox) -> None:
        """A light message made full; what the view shows stays in place."""
        with self._reshaping():
            await box.realize()

    async def _lighten(self, boxes: list[MessageBox]) -> None:
        """Full messages far from the view made light; what the view shows stays in place."""
        with self._reshaping():
            for box in boxes:
                await box.lighten()

    def _box(self, record: MessageRecord, light: bool = True) -> MessageBox:
        box = MessageBox(record, self.origin_mode, light)
        box.variant = self.variants.get(record.id)
        box.unfolded = self._unfolded.setdefault(record.id, set())
        return box

    def _update_marker(self) -> None:
        for marker in self.query("#older-marker").results(Static):
            marker.display = bool(self.older)
            marker.update(f"▲ {len(self.older)} earlier message(s): scroll up to show them")

    async def mount_older(self, count: int = STEP, keep_view: bool = True) -> int:
        """Mount up to `count` of the older messages above the shown ones; the view keeps
        showing what it showed. Returns how many were mounted."""
        if not self.older or self._mounting:
            return 0
        self._mounting = True
        try:
            batch, self.older = self.older[-count:], self.older[:-count]
            if keep_view:
                self._hold_view()
            marker = self.query_one("#older-marker", Static)
            await self.mount_all([self._box(r) for r in batch], after=marker)
            self._update_marker()
            return len(batch)
        finally:
            self._mounting = False

    async def mount_newer(self, count: int = STEP) -> int:
        """Mount up to `count` of the newer messages below the shown ones."""
        if not self.newer or self._mounting:
            return 0
        self._mounting = True
        try:
            batch, self.newer = self.newer[:count], self.newer[count:]
            await self.mount_all([self._box(r) for r in batch])
            return len(batch)
        finally:
            self._mounting = False

    def _hold_view(self) -> None:
        """Keep the topmost message in view where it is while content grows above it (until
        the user scrolls); an anchored view stays at the bottom by itself."""
        if self._hold is not None or (self._anchored and not self._anchor_released):
            return
        top = next((b for b in self.boxes() if b.virtual_region.bottom > self.scroll_y), None)
        if top is not None:
            self._hold = (top, top.virtual_region.y - round(self.scroll_y))

    def watch_virtual_size(self) -> None:
        if self._hold is not None:
            self.call_after_refresh(self._restore_hold)

    def _restore_hold(self) -> None:
        if self._hold is None:
            return
        box, offset = self._hold
        y = box.virtual_region.y - offset
        if not box.is_attached:
            self._hold = None
        elif y != round(self.scroll_y):
            self._restoring = True
            try:
                self.scroll_to(y=y, animate=False, immediate=True)
            finally:
                self._restoring = False

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._restoring:
            self._hold = None  # the user scrolled (or the view was rebuilt)
        if self._mounting:
            return
        self._schedule_step()

    async def reveal(self, message_id: int) -> MessageBox | None:
        """Show message `message_id` (mounting it, with a window around it, if needed), scrolled
        to the top of the view."""
        box = self.box(message_id)
        if box is None:
            everything = self._all()
            index = next((i for i, r in enumerate(everything) if r.id == message_id), None)
            if index is None:
                return None
            start = max(index - BEFORE_MATCH, 0)
            end = start + FIRST_PAGE + BEFORE_MATCH
            full = self._fitting(everything[index:end])  # from it down: the view
            await self._show_window(everything, start, end, "", full)
            box = self.box(message_id)
        if box is not None:
            await box.realize()
            self.release_anchor()
            self.call_after_refresh(self.scroll_to_widget, box, animate=False, top=True)
        return box

    async def show_newest(self) -> None:
        """Back to the newest messages (after a search jump showed older ones)."""
        if self.newer:
            everything = self._all()
            start = max(len(everything) - FIRST_PAGE, 0)
            full = self._fitting(reversed(everything[start:]))
            await self._show_window(everything, start, len(everything), "", full)
        self.follow()

    async def remove_message(self, message_id: int) -> None:
        """Forget a message, mounted or not (a regenerated reply)."""
        self.older = [r for r in self.older if r.id != message_id]
        self.newer = [r for r in self.newer if r.id != message_id]
        for box in [b for b in self.boxes() if b.message_id == message_id]:
            await box.remove()
        self._update_marker()

    async def add_message(self, record: MessageRecord) -> MessageBox:
        for welcome in self.query("#welcome"):
            await welcome.remove()
        await self.show_newest()
        box = self._box(record, light=False)
        await self.mount(box)
        self.follow()
        return box

    def follow(self) -> None:
        """Stick to the bottom (until the user scrolls away)."""
        self.anchor()

    def boxes(self) -> list[MessageBox]:
        return [c for c in self.children if isinstance(c, MessageBox)]

    def box(self, message_id: int) -> MessageBox | None:
        return next((b for b in self.boxes() if b.message_id == message_id), None)

    def set_origin_mode(self, on: bool) -> None:
        self.origin_mode = on
        for box in self.boxes():
            box.set_origin_mode(on)


def estimated_rows(record: MessageRecord, width: int) -> int:
    """About how many rows a message takes at `width` columns: its header, its lines wrapped,
    a blank line, the stats line and the margin above it."""
    lines = record.content.splitlines() or [""]
    text_rows = sum(max(math.ceil(len(line) / width), 1) for line in lines)
    return text_rows + 3 + (record.stats is not None)
