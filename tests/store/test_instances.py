"""Two specchat instances on one history, a killed instance, database errors after opening."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from specchat.errors import SpecchatError
from specchat.store import ChatStore, HistoryError, MessageStatus
from specchat.store.migrations import SCHEMA_VERSION, statements
from specchat.store.owners import owners_dir

CHILD_STREAMS = """
import sys
from specchat.store import ChatStore
store = ChatStore(sys.argv[1])
chat = store.create_chat("child")
reply = store.begin_reply(chat.id)
store.update_reply(reply.id, "half of it")
print(chat.id, flush=True)
sys.stdin.read()  # streams until killed
"""

CHILD_OPENS = """
import sys, time
from pathlib import Path
from specchat.store import ChatStore
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
store = ChatStore(sys.argv[1], busy_timeout=30)
chat = store.create_chat("from " + sys.argv[3])
store.add_message(chat.id, "user", "hi")
store.close()
"""


def child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_another_instance_does_not_mark_a_live_reply(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    a = ChatStore(path)
    chat = a.create_chat()
    reply = a.begin_reply(chat.id)
    a.update_reply(reply.id, "still coming")
    b = ChatStore(path)  # a second instance starts while a streams
    assert b.recovered == 0
    assert b.messages(chat.id)[-1].status is MessageStatus.STREAMING
    other = b.create_chat("b's chat")  # both keep working
    b.add_message(other.id, "user", "hello from b")
    a.finish_reply(reply.id, "still coming, done", MessageStatus.COMPLETE)
    assert b.messages(chat.id)[-1].status is MessageStatus.COMPLETE
    assert a.list_chats()[0].title == "b's chat"
    b.close()
    a.close()


def test_reply_of_a_killed_process_is_marked_but_not_while_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    proc = child(CHILD_STREAMS, str(path))
    try:
        assert proc.stdout is not None
        chat_id = int(proc.stdout.readline())
        running = ChatStore(path)
        assert running.recovered == 0  # the child is alive: its reply is left alone
        running.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    assert Path(f"{path}-wal").exists()  # as a crash leaves it
    after = ChatStore(path)
    assert after.recovered == 1
    last = after.messages(chat_id)[-1]
    assert (last.content, last.status) == ("half of it", MessageStatus.INCOMPLETE)
    assert [p.name for p in owners_dir(path).iterdir()] == [f"{after.owner_token}.lock"]
    after.close()


@pytest.mark.slow  # processes racing to migrate
def test_first_run_migration_cannot_race(tmp_path: Path) -> None:
    for round_ in range(3):
        path = tmp_path / f"h{round_}.sqlite3"
        go = tmp_path / f"go{round_}"
        procs = [child(CHILD_OPENS, str(path), str(go), str(i)) for i in range(4)]
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, errors
        conn = sqlite3.connect(path)
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert versions.fetchall() == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        assert conn.execute("SELECT COUNT(*) FROM chats").fetchone() == (4,)
        conn.close()


def test_migration_waits_for_another_writer_and_rechecks(tmp_path: Path) -> None:
    """An instance that finds the file mid-migration by another one waits and applies nothing."""
    path = tmp_path / "h.sqlite3"
    ChatStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM schema_migrations WHERE version = ?", (SCHEMA_VERSION,))
    conn.execute("BEGIN IMMEDIATE")  # 'the other instance' is migrating right now
    conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (SCHEMA_VERSION,))
    with pytest.raises(SpecchatError, match="locked by another program"):
        ChatStore(path, busy_timeout=0.05)  # it waited for the lock instead of migrating
    conn.execute("COMMIT")
    store = ChatStore(path, busy_timeout=0.05)  # the version is re-read under the lock
    assert store.schema_version == SCHEMA_VERSION
    store.close()


def test_migration_statements_split() -> None:
    assert statements("CREATE TABLE a (x);\n CREATE TABLE b (y);\n") == [
        "CREATE TABLE a (x);",
        "CREATE TABLE b (y);",
    ]


def test_locked_database_is_one_history_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = ChatStore(path, busy_timeout=0.05)
    chat = store.create_chat()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(HistoryError, match=r"could not save the message: .*locked.*waited 0.05 s"):
        store.add_message(chat.id, "user", "blocked")
    assert store.list_chats()  # reading still works (WAL)
    other.execute("ROLLBACK")
    store.add_message(chat.id, "user", "now it goes")
    assert [m.content for m in store.messages(chat.id)] == ["now it goes"]
    store.close()


def test_unreadable_json_in_rows_is_shown_without_it(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = ChatStore(path)
    chat = store.create_chat("damaged")
    good = store.add_message(chat.id, "user", "fine")
    bad = store.add_message(chat.id, "assistant", "the text survives")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE messages SET stats = '{not json', segments = '[[1]]', notices = '\"x\"',"
            " status = 'bogus' WHERE id = ?",
            (bad.id,),
        )
        conn.execute("UPDATE chats SET settings = '[1, 2' WHERE id = ?", (chat.id,))
    records = store.messages(chat.id)
    assert [r.content for r in records] == ["fine", "the text survives"]
    assert records[0].id == good.id and records[0].notices == ()
    broken = records[1]
    assert broken.stats is None and broken.segments == ()
    assert broken.status is MessageStatus.INCOMPLETE
    assert broken.notices == (
        "part of this message's saved data is unreadable (stats, notices, token origins, status);"
        " shown without it",
    )
    again = store.get_chat(chat.id)
    assert again is not None and "settings are unreadable" in again.problem
    assert store.list_chats()[0].title == "damaged"
    store.close()


def test_lock_files_of_dead_instances_are_swept(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    ChatStore(path).close()
    stale = owners_dir(path) / "deadbeef.lock"
    stale.write_text(str(os.getpid()))  # nobody holds it: its process is gone
    store = ChatStore(path)
    assert not stale.exists()
    store.close()
    assert list(owners_dir(path).iterdir()) == []
