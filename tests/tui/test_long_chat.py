"""Long chats open with only the newest messages mounted; older ones come in idle time, a few at
a time, as far as a few screens above the view (and far-below ones are unmounted again).

The open time of a 500-message chat and the longest UI stall are measured by
`python -m tests.tui.test_long_chat` (printed, never asserted)."""

from __future__ import annotations

import pytest
from textual.widgets import Collapsible, Markdown, Static

from specchat.store import ChatStore, MessageStatus
from specchat.tui.widgets import ChatView, MessageBox, chat_view
from specchat.tui.widgets.chat_view import AHEAD, BEFORE_MATCH, FAR, FIRST_PAGE, PAGE

from .conftest import ready, send, wait_for

REPLY = (
    "Here is a longer answer with **Markdown**:\n\n- one point\n- another point\n\n"
    "```python\nprint('code block')\n```\n"
)


def fill(store: ChatStore, count: int = 500) -> int:
    """A chat of `count` messages, alternating user and assistant (with stats)."""
    chat = store.create_chat("Long chat")
    for i in range(count // 2):
        store.add_message(chat.id, "user", f"question number {i}")
        reply = store.begin_reply(chat.id)
        stats = {"generated_tokens": 30, "tokens_per_second": 25.0, "finish_reason": "stop"}
        store.finish_reply(reply.id, f"Answer {i}. {REPLY}", MessageStatus.COMPLETE, stats)
    return chat.id


def in_order(view: ChatView) -> bool:
    ids = [b.message_id for b in view.boxes()]
    return ids == sorted(ids) and len(set(ids)) == len(ids)


@pytest.mark.slow  # mounts a long chat page by page
async def test_older_messages_come_in_idle_time_while_the_view_stays_at_the_bottom(
    make_app,
) -> None:
    app = make_app()
    chat_id = fill(app.store)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ready(pilot)
        view = screen.query_one(ChatView)
        # no scrolling: older messages are mounted in the background, a few at a time
        await wait_for(pilot, lambda: len(view.boxes()) > FIRST_PAGE + 2)
        assert view.scroll_y == view.max_scroll_y  # still at the bottom while they came
        await wait_for(pilot, lambda: not view._wants_older() and not view._step_scheduled)
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y >= AHEAD * view.size.height
        assert view.boxes()[-1].text.startswith("Answer 249.")  # the newest at the bottom
        assert 400 < len(view.older) < 500 - FIRST_PAGE  # AHEAD screens of them, not all
        assert view.query_one("#older-marker").display and in_order(view)
        # scrolling up: more come above, and the view stays on what it showed
        view.release_anchor()  # as the user's scrolling does
        view.scroll_home(animate=False, immediate=True)
        first_shown, older = view.boxes()[0], len(view.older)
        await wait_for(pilot, lambda: len(view.older) < older - 2)
        assert view.boxes()[0] is not first_shown and in_order(view)
        # still at the top of the view (put back after each step's layout)
        await wait_for(
            pilot,
            lambda: view.scroll_y > 0 and 0 <= first_shown.virtual_region.y - view.scroll_y <= 3,
        )
        # a new message still goes at the end, after everything
        await send(pilot, "and one more")
        assert view.boxes()[-1].text == "You said: and one more"
        assert len(app.store.messages(chat_id)) == 502


@pytest.mark.slow  # mounts a long chat page by page
async def test_a_key_press_is_handled_while_older_messages_are_mounted(
    make_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_view, "AHEAD", 100)  # background mounting for a long while
    app = make_app()
    fill(app.store)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ready(pilot)
        view = screen.query_one(ChatView)
        await wait_for(pilot, lambda: len(view.boxes()) > FIRST_PAGE)  # mounting has begun
        prompt = screen.query_one("#prompt")
        prompt.focus()
        await pilot.press("h", "i")
        assert prompt.text == "hi"  # type: ignore[attr-defined]
        assert view._wants_older()  # typed while mounting was still going on
        assert view.scroll_y == view.max_scroll_y  # at the bottom all along


async def test_short_messages_that_do_not_fill_the_view_bring_older_ones(make_app) -> None:
    app = make_app()
    chat = app.store.create_chat("short")
    for i in range(60):
        app.store.add_message(chat.id, "user", f"m{i}")
    async with app.run_test(size=(100, 150)) as pilot:
        screen = await ready(pilot)
        view = screen.query_one(ChatView)
        await wait_for(pilot, lambda: view.max_scroll_y > 0 or not view.older)
        assert len(view.boxes()) > FIRST_PAGE  # more than the first page: the view is full


@pytest.mark.slow  # scrolls through 130 messages both ways: 40-140 s of the fast loop's 2 minutes
async def test_every_message_can_be_reached_with_few_mounted_at_a_time(make_app) -> None:
    app = make_app()
    fill(app.store, 130)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ready(pilot)
        view = screen.query_one(ChatView)
        newest = view.boxes()[-1]  # its stats unfolded by a click, as a user does
        await wait_for(pilot, lambda: bool(newest.query(".message-stats")))
        await pilot.click(newest.query_one(".message-stats CollapsibleTitle"))
        await wait_for(pilot, lambda: not newest.query_one(".message-stats", Collapsible).collapsed)
        screen.query_one("#prompt").focus()  # back to typing (a focused message stays mounted)
        most = 0
        while view.older:
            before = len(view.older)
            view.scroll_home(animate=False, immediate=True)
            await wait_for(pilot, lambda n=before: len(view.older) < n)
            most = max(most, len(view.boxes()))
        await wait_for(pilot, lambda: not view._far_below() and not view._mounting)
        assert not view.query_one("#older-marker").display
        assert view.boxes()[0].text == "question number 0" and in_order(view)
        assert view.newer and most < 80  # the ones far below were unmounted again
        assert newest.message_id not in [b.message_id for b in view.boxes()]
        assert all(isinstance(b, MessageBox) for b in view.boxes())
        while view.newer:  # and back down to the newest
            before = len(view.newer)
            view.scroll_end(animate=False, immediate=True)
            await wait_for(pilot, lambda n=before: len(view.newer) < n)
        assert view.boxes()[-1].text.startswith("Answer 64.") and in_order(view)
        again = view.boxes()[-1]  # mounted anew, its stats unfolded again
        assert again is not newest and again.message_id == newest.message_id
        await wait_for(pilot, lambda: not again.light and bool(again.query(".message-stats")))
        assert not again.query_one(".message-stats", Collapsible).collapsed
        again.query_one(".message-stats", Collapsible).collapsed = True  # folded: remembered
        await pilot.pause()
        assert "message-stats" not in again.unfolded and again.can_lighten()


@pytest.mark.slow  # mounts a long chat page by page
async def test_search_jump_to_an_old_message_mounts_a_window_around_it(make_app) -> None:
    app = make_app()
    chat_id = fill(app.store)
    target = app.store.messages(chat_id)[6]  # question number 3
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ready(pilot)
        view = screen.query_one(ChatView)
        box = await view.reveal(target.id)
        await pilot.pause()
        assert box is not None and box.text == "question number 3" and not box.light
        # a window around it (growing by a few screens as the view settles), not the 494
        # messages from it to the end
        assert len(view.boxes()) <= FIRST_PAGE + BEFORE_MATCH + 2 * PAGE
        assert len(view.newer) >= 400
        assert box.region.height > 0  # on screen
        mounted = len(view.boxes())
        view.scroll_end(animate=False, immediate=True)  # scrolling down brings newer ones
        await wait_for(pilot, lambda: len(view.boxes()) > mounted)
        # a new message returns to the newest ones (generous timeout: mounting a 500-message
        # window under a loaded CI machine)
        await send(pilot, "back to the end", timeout=30)
        assert not view.newer and view.boxes()[-1].text == "You said: back to the end"
        assert view.boxes()[-3].text.startswith("Answer 249.")


@pytest.mark.slow  # mounts a long chat page by page
async def test_messages_off_screen_are_light_until_they_come_near_the_view(make_app) -> None:
    app = make_app()
    fill(app.store)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ready(pilot)
        view = screen.query_one(ChatView)
        await wait_for(pilot, lambda: not view._wants_older() and not view._step_scheduled)
        await pilot.pause()

        def on_screen() -> list[MessageBox]:
            top, bottom = view.scroll_y, view.scroll_y + view.size.height
            return [
                b
                for b in view.boxes()
                if b.virtual_region.bottom > top and b.virtual_region.y < bottom
            ]

        assert on_screen() and all(not b.light for b in on_screen())  # shown in full
        light = [b for b in view.boxes() if b.light]
        assert len(light) >= 4  # the ones far above: placeholders
        assert all(b.virtual_region.bottom < view.scroll_y for b in light)
        assert all(not b.query(Markdown) for b in light)
        assert len(view.query(Markdown)) < len(view.boxes()) - 3
        box = next(b for b in light if b.role == "assistant")
        placeholder = str(box.query_one(".message-light", Static).render())
        assert placeholder.startswith(box.text.split("**")[0]) and "▶ 25.0 tok/s" in placeholder
        # scrolled to, it becomes the full message (Markdown, code block to click, stats)
        view.release_anchor()
        view.scroll_to_widget(box, animate=False, top=True, immediate=True)
        await wait_for(pilot, lambda: not box.light and box.query(".message-stats"))
        assert (
            box.query(Markdown) and box.query(".message-stats") and not box.query(".message-light")
        )
        assert box.code_blocks() == ["print('code block')"]

        # full messages far from the view are made light again (fewer widgets to lay out)
        def full_far() -> list[MessageBox]:
            top, bottom = view.scroll_y, view.scroll_y + view.size.height
            return [
                b
                for b in view.boxes()
                if not b.light
                and max(top - b.virtual_region.bottom, b.virtual_region.y - bottom, 0)
                > FAR * view.size.height
            ]

        await wait_for(pilot, lambda: not full_far())
        assert in_order(view)


def measure(runs: int = 3, pages: int = 30, every: float = 0.25) -> None:  # pragma: no cover
    """Open a generated 500-message chat in a headless app (120x40) and print: the time from
    the app's start to the chat shown, and open_chat alone; then the longest UI stall (the
    largest gap between ticks of a 5 ms timer, wall clock and CPU time of the UI thread) while
    idle for 2 s and while paging up `pages` screens, one every `every` s; then pilot.press
    ("pageup") + pilot.pause() per page (pause waits for the CPU to be idle, up to 1 s, so this
    counts background work too). Run: python -m tests.tui.test_long_chat"""
    import asyncio
    import statistics
    import tempfile
    import time
    from pathlib import Path

    from specchat.tui import SpecchatApp
    from specchat.tui.screens.main import MainScreen

    from .fake_engine import FakeLoader

    class Ticks:
        def __init__(self) -> None:
            self.reset()

        def tick(self) -> None:
            now, cpu = time.perf_counter(), time.thread_time()
            self.wall = max(self.wall, now - self.last)
            self.cpu = max(self.cpu, cpu - self.last_cpu)
            self.last, self.last_cpu = now, cpu

        def reset(self) -> None:
            self.last, self.last_cpu = time.perf_counter(), time.thread_time()
            self.wall = self.cpu = 0.0

        def __str__(self) -> str:
            return f"{self.wall * 1000:.0f} ms wall / {self.cpu * 1000:.0f} ms CPU"

    async def one(path: Path) -> None:
        app = SpecchatApp(ChatStore(path), FakeLoader())
        started = time.perf_counter()
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await ready(pilot)
            shown = time.perf_counter() - started
            assert isinstance(screen, MainScreen) and screen.chat is not None
            view = screen.query_one(ChatView)
            t0, c0 = time.perf_counter(), time.thread_time()
            await screen.open_chat(screen.chat.id)
            opened, cpu = time.perf_counter() - t0, time.thread_time() - c0
            ticks = Ticks()
            timer = app.set_interval(0.005, ticks.tick)
            await asyncio.sleep(2.0)  # idle: the user reads the newest reply
            idle = str(ticks)
            ticks.reset()
            for _ in range(pages):  # the user pages up
                view.scroll_page_up(animate=False)  # what the pageup key does
                await asyncio.sleep(every)
            paging, top = str(ticks), view.boxes()[0].text[:12]
            timer.stop()
            view.boxes()[-1].focus(scroll_visible=False)  # keys reach the chat view
            await pilot.pause()
            times = []
            for _ in range(10):
                t1 = time.perf_counter()
                await pilot.press("pageup")
                await pilot.pause()
                times.append((time.perf_counter() - t1) * 1000)
            print(
                f"500 messages: app start to chat shown {shown:.3f} s; open_chat {opened:.3f} s"
                f" ({cpu:.3f} s CPU)\n  2 s idle: longest stall {idle}\n  paging up {pages}"
                f" screens, one every {every} s: longest stall {paging} (reached {top!r})\n"
                f"  press+pause per page: max {max(times):.0f} ms,"
                f" median {statistics.median(times):.0f} ms"
            )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.sqlite3"
        store = ChatStore(path)
        fill(store)
        store.close()
        for _ in range(runs):
            asyncio.run(one(path))


if __name__ == "__main__":  # pragma: no cover
    measure()
