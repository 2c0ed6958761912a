"""Database errors after the history is open: one clear error, the screen kept, the app alive."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.notifications import Notification
from textual.widgets import OptionList

from specchat.store import ChatStore, MessageStatus
from specchat.tui import SpecchatApp
from specchat.tui.widgets import MessageBox

from .conftest import ready, send, wait_for
from .fake_engine import FakeEngine, scripted


class FlakyConnection:
    """A real sqlite3 connection that raises `error` for statements starting with `prefix`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.failures: dict[str, sqlite3.Error] = {}
        self.raised = 0

    def fail(self, prefix: str, error: sqlite3.Error | None) -> None:
        if error is None:
            self.failures.pop(prefix, None)
        else:
            self.failures[prefix] = error

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        for prefix, error in self.failures.items():
            if sql.startswith(prefix):
                self.raised += 1
                raise error
        return self._conn.execute(sql, params)

    def __enter__(self) -> sqlite3.Connection:
        return self._conn.__enter__()

    def __exit__(self, *exc: object) -> bool | None:
        return self._conn.__exit__(*exc)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def flaky(app: SpecchatApp) -> FlakyConnection:
    conn = FlakyConnection(app.store._conn)
    app.store._conn = conn  # type: ignore[assignment]
    return conn


def errors(app: SpecchatApp) -> list[Notification]:
    return [n for n in app._notifications if n.severity == "error"]


DISK_FULL = sqlite3.OperationalError("database or disk is full")
MALFORMED = sqlite3.DatabaseError("database disk image is malformed")
SAVE_PARTIAL = "UPDATE messages SET content = ?, segments = ?"
READ_MESSAGES = "SELECT id, chat_id, role, content"


async def test_disk_full_while_streaming_one_error_reply_kept(make_app, db_path: Path) -> None:
    def reply(messages: Any) -> list[Any]:
        first = messages[-1].content == "q"
        return scripted("one two three four five six" if first else f"ok {messages[-1].content}")

    engine = FakeEngine(reply=reply, pause_after=2)
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        conn = flaky(app)
        conn.fail(SAVE_PARTIAL, DISK_FULL)
        await send(pilot, "q", wait=False)
        await wait_for(pilot, lambda: engine.paused.is_set() and screen.reply is not None)
        await wait_for(pilot, lambda: screen.query(MessageBox).last().text == "one two")
        engine.resume.set()
        await wait_for(pilot, lambda: screen.replies_finished > 0)
        await pilot.pause()
        box = screen.query(MessageBox).last()
        assert box.text == "one two three four five six"  # shown whole, nothing wiped
        [error] = errors(app)  # one error, although every batch failed to save
        assert error.title == "Chat history"
        assert error.message.startswith("could not save the reply: the disk is full (")
        assert conn.raised == 1  # no retry on every batch (each could wait for the lock)
        conn.fail(SAVE_PARTIAL, None)
        await send(pilot, "still alive?")
        assert screen.query(MessageBox).last().text == "ok still alive?"
    store = ChatStore(db_path)  # the end of the reply was saved whole
    contents = [(m.content, m.status) for m in store.messages(store.list_chats()[0].id)]
    assert contents[1] == ("one two three four five six", MessageStatus.COMPLETE)


async def test_locked_history_keeps_the_prompt_and_the_chat(make_app, db_path: Path) -> None:
    app = make_app(busy_timeout=0.05)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "first")
        other = sqlite3.connect(db_path, isolation_level=None)  # another program writes
        other.execute("BEGIN IMMEDIATE")
        await send(pilot, "second", wait=False)
        await wait_for(pilot, lambda: errors(app))
        assert "locked by another program (waited 0.05 s)" in errors(app)[0].message
        assert screen.query_one("#prompt").text == "second"  # nothing typed is lost
        assert [b.text for b in screen.query(MessageBox)] == ["first", "You said: first"]
        assert screen.reply is None and app.is_running
        other.execute("ROLLBACK")
        other.close()
        await pilot.press("enter")  # the kept text goes out now
        await wait_for(pilot, lambda: screen.replies_finished == 2)
        await pilot.pause()
        assert screen.query(MessageBox).last().text == "You said: second"


async def test_damaged_page_when_switching_chats_keeps_the_open_one(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "apples")
        await pilot.press("ctrl+n")
        await send(pilot, "bananas")
        conn = flaky(app)
        conn.fail(READ_MESSAGES, MALFORMED)
        chat_list = screen.query_one("#chat-list", OptionList)
        chat_list.focus()
        chat_list.highlighted = 1  # apples
        await pilot.press("enter")
        await wait_for(pilot, lambda: errors(app))
        assert "the chat history file is damaged (database disk image is malformed)" in (
            errors(app)[0].message
        )
        assert screen.chat is not None and screen.chat.title == "bananas"
        assert [b.text for b in screen.query(MessageBox)] == ["bananas", "You said: bananas"]
        conn.fail(READ_MESSAGES, None)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.chat.title == "apples")


async def test_every_history_action_fails_softly(make_app) -> None:
    """Each dialog and action that touches the history: an error each time, never a crash."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "hello")
        conn = flaky(app)
        for prefix in ("SELECT", "UPDATE", "DELETE", "INSERT"):
            conn.fail(prefix, DISK_FULL)
        before = [b.text for b in screen.query(MessageBox)]
        actions: list[Callable[[], Any]] = [
            lambda: pilot.press("ctrl+r"),  # regenerate
            lambda: pilot.press("ctrl+g"),  # edit last
            lambda: pilot.press("ctrl+s"),  # export
            lambda: pilot.press("f5"),  # summary
            lambda: pilot.press("ctrl+n"),  # new chat (welcome), then back below
        ]
        for index, action in enumerate(actions, 1):
            await action()
            await wait_for(pilot, lambda index=index: len(errors(app)) >= index)
        assert app.is_running and screen.query("#welcome")  # new chat needs no history
        await send(pilot, "not saved", wait=False)
        await wait_for(pilot, lambda: len(errors(app)) >= len(actions) + 1)
        assert screen.query_one("#prompt").text == "not saved"
        for prefix in ("SELECT", "UPDATE", "DELETE", "INSERT"):
            conn.fail(prefix, None)
        chat_list = screen.query_one("#chat-list", OptionList)
        chat_list.focus()
        chat_list.highlighted = 0
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.chat is not None)
        await pilot.pause()
        assert [b.text for b in screen.query(MessageBox)] == before


async def test_unreadable_json_row_is_shown_with_a_notice(make_app, db_path: Path) -> None:
    store = ChatStore(db_path)
    chat = store.create_chat("damaged row")
    store.add_message(chat.id, "user", "q")
    reply = store.add_message(chat.id, "assistant", "the answer survives")
    store.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "UPDATE messages SET stats = '{\"cut', segments = 'x' WHERE id = ?", (reply.id,)
        )
        conn.execute("UPDATE chats SET settings = '{' WHERE id = ?", (chat.id,))
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        box = screen.query(MessageBox).last()
        assert box.text == "the answer survives"
        notices = str(box.query_one(".message-notices").render())
        assert "saved data is unreadable (stats, token origins)" in notices
        warnings = [n.message for n in app._notifications if n.severity == "warning"]
        assert any("settings are unreadable" in w for w in warnings)
        await send(pilot, "and it goes on")
        assert screen.query(MessageBox).last().text == "You said: and it goes on"


def corrupt_messages_table(db_path: Path) -> None:
    """Overwrite the messages table's root page header with garbage (a real damaged page)."""
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'messages'"
        ).fetchone()[0]
    conn.close()
    with db_path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * 16)


async def test_real_damaged_page_shows_an_error_and_the_app_runs(make_app, db_path) -> None:
    store = ChatStore(db_path)
    chat = store.create_chat("on a bad page")
    store.add_message(chat.id, "user", "lost")
    store.close()
    corrupt_messages_table(db_path)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: errors(app))
        assert "could not read the messages: the chat history file is damaged" in (
            errors(app)[0].message
        )
        assert screen.chat is None and screen.query("#welcome")  # the welcome, not a crash
        chat_list = screen.query_one("#chat-list", OptionList)
        assert chat_list.get_option_at_index(0).prompt == "on a bad page"  # chats still listed
        await send(pilot, "new", wait=False)
        await wait_for(pilot, lambda: len(errors(app)) >= 2)
        assert app.is_running and screen.query_one("#prompt").text == "new"
