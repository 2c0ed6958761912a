"""ChatStore: schema migrations, chats, messages written as they stream, recovery, export."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from specchat.config.paths import data_dir
from specchat.errors import SpecchatError
from specchat.store import (
    ChatSettings,
    ChatStore,
    MessageStatus,
    chat_to_markdown,
    default_db_path,
)
from specchat.store.migrations import SCHEMA_VERSION


def ticking() -> object:
    now = [1_700_000_000.0]

    def clock() -> float:
        now[0] += 1
        return now[0]

    return clock


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    return ChatStore(tmp_path / "h.sqlite3", clock=ticking())  # type: ignore[arg-type]


def test_data_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECCHAT_DATA_DIR", str(tmp_path / "d"))
    assert data_dir() == tmp_path / "d"
    assert default_db_path() == tmp_path / "d" / "history.sqlite3"
    monkeypatch.delenv("SPECCHAT_DATA_DIR")
    assert "specchat" in str(data_dir())


def test_schema_is_versioned_and_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    ChatStore(path).close()
    ChatStore(path).close()
    rows = sqlite3.connect(path).execute("SELECT version FROM schema_migrations").fetchall()
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    ChatStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    with pytest.raises(SpecchatError, match="newer than this specchat"):
        ChatStore(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SpecchatError, match="unreadable"):
        ChatStore(path)


def test_chats_crud_search_and_order(store: ChatStore) -> None:
    a = store.create_chat("Python tips")
    b = store.create_chat("100% _odd_ title")
    assert [c.title for c in store.list_chats()] == ["100% _odd_ title", "Python tips"]
    store.add_message(a.id, "user", "hi")  # touching a chat moves it to the top
    assert [c.id for c in store.list_chats()] == [a.id, b.id]
    assert [c.id for c in store.list_chats("python")] == [a.id]
    assert [c.id for c in store.list_chats("100%")] == [b.id]
    assert store.list_chats("_odd_x") == []  # LIKE wildcards are escaped
    store.rename_chat(a.id, "  Renamed\n chat ")
    assert store.get_chat(a.id).title == "Renamed chat"
    store.delete_chat(a.id)
    assert store.get_chat(a.id) is None and store.messages(a.id) == []


def test_settings_round_trip(store: ChatStore) -> None:
    chat = store.create_chat()
    settings = ChatSettings(system_prompt="Be brief", temperature=0.7, seed=3, adaptive=False)
    store.update_chat_settings(chat.id, settings)
    assert store.get_chat(chat.id).settings == settings
    assert ChatSettings.from_json('{"temperature": 1.0, "future_field": 1}').temperature == 1.0


def test_reply_written_while_streaming_and_finished(store: ChatStore) -> None:
    chat = store.create_chat()
    store.add_message(chat.id, "user", "q")
    reply = store.begin_reply(chat.id)
    assert store.messages(chat.id)[-1].status is MessageStatus.STREAMING
    store.update_reply(reply.id, "par", [("par", "draft")])
    assert store.messages(chat.id)[-1].content == "par"
    stats = {"generated_tokens": 2, "tokens_per_second": 10.0}
    segments = [("par", "draft"), ("tial", "target")]
    store.finish_reply(reply.id, "partial", MessageStatus.CANCELLED, stats, segments, ["note"])
    last = store.messages(chat.id)[-1]
    assert (last.content, last.status, last.stats) == ("partial", MessageStatus.CANCELLED, stats)
    assert last.segments == (("par", "draft"), ("tial", "target"))
    assert last.notices == ("note",)


def test_interrupted_reply_is_marked_incomplete_on_open(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = ChatStore(path)
    chat = store.create_chat()
    reply = store.begin_reply(chat.id)
    store.update_reply(reply.id, "half")
    store.close()
    again = ChatStore(path)
    assert again.recovered == 1
    last = again.messages(chat.id)[-1]
    assert (last.content, last.status) == ("half", MessageStatus.INCOMPLETE)


def test_delete_messages_from(store: ChatStore) -> None:
    chat = store.create_chat()
    ids = [store.add_message(chat.id, "user", str(i)).id for i in range(4)]
    store.delete_messages_from(chat.id, ids[2])
    assert [m.content for m in store.messages(chat.id)] == ["0", "1"]


def test_export_markdown(store: ChatStore) -> None:
    chat = store.create_chat("Export me", pair_name="demo")
    store.update_chat_settings(chat.id, ChatSettings(system_prompt="Line one\nLine two"))
    store.add_message(chat.id, "user", "Hello")
    reply = store.begin_reply(chat.id)
    stats = {
        "generated_tokens": 5,
        "tokens_per_second": 12.5,
        "acceptance_rate": 0.8,
        "tokens_per_pass": 2.5,
        "ttft_ms": 99.0,
    }
    store.finish_reply(reply.id, "Hi **there**", MessageStatus.CANCELLED, stats)
    chat = store.get_chat(chat.id)
    text = chat_to_markdown(chat, store.messages(chat.id))
    assert text.startswith("# Export me\n\n_Exported from specchat · started 2023-11-14")
    assert "pair `demo`" in text
    assert "> Line one\n> Line two" in text
    assert "## You\n\nHello" in text
    assert "## Assistant (cancelled)\n\nHi **there**" in text
    assert "5 tokens · 12.5 tok/s · acceptance 80% · 2.5 tokens/pass · TTFT 99 ms" in text
