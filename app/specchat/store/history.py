"""ChatStore: chats and messages in one SQLite file, each change committed when it happens."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from specchat.errors import SpecchatError
from specchat.store.migrations import migrate
from specchat.store.paths import default_db_path
from specchat.store.records import (
    ChatRecord,
    ChatSettings,
    MessageRecord,
    MessageStatus,
    Segment,
)

DEFAULT_TITLE = "New chat"


class ChatStore:
    """Used from one thread (the UI's). Every method commits before it returns."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise SpecchatError(f"cannot open chat history {self.path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            # WAL: each commit is one append; a kill mid-reply loses nothing committed
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self.schema_version = migrate(self._conn)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise SpecchatError(f"chat history {self.path} is unreadable: {exc}") from exc
        self.recovered = self._recover_interrupted()

    @classmethod
    def open_default(cls) -> ChatStore:
        return cls(default_db_path())

    def close(self) -> None:
        self._conn.close()

    # chats -------------------------------------------------------------------------------
    def create_chat(
        self,
        title: str = DEFAULT_TITLE,
        pair_name: str | None = None,
        settings: ChatSettings | None = None,
    ) -> ChatRecord:
        now = self._clock()
        settings = settings or ChatSettings()
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO chats (title, created_at, updated_at, pair_name, settings)"
                " VALUES (?, ?, ?, ?, ?)",
                (title, now, now, pair_name, settings.to_json()),
            )
        return ChatRecord(int(cur.lastrowid or 0), title, now, now, pair_name, settings)

    def list_chats(self, search: str = "") -> list[ChatRecord]:
        sql = "SELECT id, title, created_at, updated_at, pair_name, settings FROM chats"
        params: tuple[str, ...] = ()
        if search.strip():
            sql += " WHERE title LIKE ? ESCAPE '\\'"
            params = ("%" + _like_escape(search.strip()) + "%",)
        sql += " ORDER BY updated_at DESC, id DESC"
        return [_chat(row) for row in self._conn.execute(sql, params)]

    def get_chat(self, chat_id: int) -> ChatRecord | None:
        row = self._conn.execute(
            "SELECT id, title, created_at, updated_at, pair_name, settings FROM chats WHERE id = ?",
            (chat_id,),
        ).fetchone()
        return _chat(row) if row else None

    def rename_chat(self, chat_id: int, title: str) -> None:
        title = " ".join(title.split()) or DEFAULT_TITLE
        with self._conn:
            self._conn.execute("UPDATE chats SET title = ? WHERE id = ?", (title, chat_id))

    def update_chat_settings(self, chat_id: int, settings: ChatSettings) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE chats SET settings = ? WHERE id = ?", (settings.to_json(), chat_id)
            )

    def set_chat_pair(self, chat_id: int, pair_name: str | None) -> None:
        with self._conn:
            self._conn.execute("UPDATE chats SET pair_name = ? WHERE id = ?", (pair_name, chat_id))

    def delete_chat(self, chat_id: int) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM chats WHERE id = ?", (chat_id,))

    # messages ----------------------------------------------------------------------------
    def add_message(
        self,
        chat_id: int,
        role: str,
        content: str,
        status: MessageStatus = MessageStatus.COMPLETE,
    ) -> MessageRecord:
        now = self._clock()
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO messages (chat_id, role, content, status, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (chat_id, role, content, status.value, now),
            )
            self._conn.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (now, chat_id))
        return MessageRecord(int(cur.lastrowid or 0), chat_id, role, content, status, None, (), now)

    def begin_reply(self, chat_id: int) -> MessageRecord:
        """An empty assistant message marked as streaming, saved before the first token."""
        return self.add_message(chat_id, "assistant", "", MessageStatus.STREAMING)

    def update_reply(self, message_id: int, content: str, segments: Sequence[Segment] = ()) -> None:
        """Save the text shown so far (called on every UI batch while streaming)."""
        with self._conn:
            self._conn.execute(
                "UPDATE messages SET content = ?, segments = ? WHERE id = ?",
                (content, _segments_json(segments), message_id),
            )

    def finish_reply(
        self,
        message_id: int,
        content: str,
        status: MessageStatus,
        stats: dict[str, object] | None = None,
        segments: Sequence[Segment] = (),
        notices: Iterable[str] = (),
    ) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE messages SET content = ?, status = ?, stats = ?, segments = ?, notices = ?"
                " WHERE id = ?",
                (
                    content,
                    status.value,
                    json.dumps(stats) if stats is not None else None,
                    _segments_json(segments),
                    json.dumps(list(notices)),
                    message_id,
                ),
            )

    def messages(self, chat_id: int) -> list[MessageRecord]:
        rows = self._conn.execute(
            "SELECT id, chat_id, role, content, status, stats, segments, created_at, notices"
            " FROM messages WHERE chat_id = ? ORDER BY id",
            (chat_id,),
        )
        return [_message(row) for row in rows]

    def delete_messages_from(self, chat_id: int, message_id: int) -> None:
        """Delete a message and every later one of the chat (regenerate, edit & resend)."""
        with self._conn:
            self._conn.execute(
                "DELETE FROM messages WHERE chat_id = ? AND id >= ?", (chat_id, message_id)
            )

    def _recover_interrupted(self) -> int:
        """Replies left 'streaming' by a crash or kill are kept and marked incomplete."""
        with self._conn:
            cur = self._conn.execute(
                "UPDATE messages SET status = ? WHERE status = ?",
                (MessageStatus.INCOMPLETE.value, MessageStatus.STREAMING.value),
            )
        return cur.rowcount


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _segments_json(segments: Sequence[Segment]) -> str | None:
    return json.dumps([list(s) for s in segments]) if segments else None


def _chat(row: tuple) -> ChatRecord:
    return ChatRecord(
        id=row[0],
        title=row[1],
        created_at=row[2],
        updated_at=row[3],
        pair_name=row[4],
        settings=ChatSettings.from_json(row[5]),
    )


def _message(row: tuple) -> MessageRecord:
    return MessageRecord(
        id=row[0],
        chat_id=row[1],
        role=row[2],
        content=row[3],
        status=MessageStatus(row[4]),
        stats=json.loads(row[5]) if row[5] else None,
        segments=tuple((str(t), str(o)) for t, o in json.loads(row[6])) if row[6] else (),
        created_at=row[7],
        notices=tuple(json.loads(row[8])) if row[8] else (),
    )
