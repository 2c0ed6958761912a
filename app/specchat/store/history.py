"""ChatStore: chats and messages in one SQLite file, each change committed when it happens."""

from __future__ import annotations

import json
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from specchat.errors import SpecchatError
from specchat.store.errors import db_call, explain
from specchat.store.migrations import migrate
from specchat.store.owners import InstanceLock, owner_alive, owners_dir, sweep
from specchat.store.paths import default_db_path
from specchat.store.records import (
    ChatRecord,
    ChatSettings,
    MessageRecord,
    MessageStatus,
    Segment,
)

DEFAULT_TITLE = "New chat"
BUSY_TIMEOUT = 3.0  # seconds a write waits for another instance's write before it fails
MESSAGE_COLUMNS = "id, chat_id, role, content, status, stats, segments, created_at, notices"
# what a regenerate variant keeps of a reply (created_at last: versions are ordered by it)
VARIANT_COLUMNS = "content, status, stats, segments, notices, created_at"


class ChatStore:
    """Used from one thread (the UI's). Every method commits before it returns.

    After opening, every database failure (locked past the busy timeout, disk full, a damaged
    page) raises HistoryError with one line; unreadable JSON in a row is not an error: the row is
    returned without that part, with a notice saying so."""

    def __init__(
        self,
        path: Path | str,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._clock = clock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout)
        except (OSError, sqlite3.Error) as exc:
            raise SpecchatError(f"cannot open chat history {self.path}: {exc}") from exc
        self._conn.text_factory = _lenient_text
        try:
            self._setup()
            self.schema_version = migrate(self._conn)
            self._owner = InstanceLock(owners_dir(self.path))
        except (sqlite3.Error, OSError) as exc:
            self._conn.close()
            raise SpecchatError(_open_error(self.path, exc, busy_timeout)) from exc
        except SpecchatError:
            self._conn.close()
            raise
        weakref.finalize(self, self._owner.release)  # a store dropped without close()
        sweep(owners_dir(self.path), keep=self._owner.token)
        self.recovered = self._recover_interrupted()

    def _setup(self) -> None:
        self._conn.execute("PRAGMA foreign_keys = ON")
        # WAL: each commit is one append; a kill mid-reply loses nothing committed; readers
        # (another instance) never wait for a writer
        _retry_busy(lambda: self._conn.execute("PRAGMA journal_mode = WAL"), self.busy_timeout)
        self._conn.execute("PRAGMA synchronous = NORMAL")

    @classmethod
    def open_default(cls) -> ChatStore:
        return cls(default_db_path())

    @property
    def owner_token(self) -> str:
        """Marks the replies this instance streams (see store/owners.py)."""
        return self._owner.token

    def close(self) -> None:
        self._owner.release()
        self._conn.close()

    # chats -------------------------------------------------------------------------------
    @db_call("create the chat")
    def create_chat(
        self,
        title: str = DEFAULT_TITLE,
        pair_name: str | None = None,
        settings: ChatSettings | None = None,
        target_path: str | None = None,
        draft_path: str | None = None,
        cross_vocab: bool | None = None,
    ) -> ChatRecord:
        """pair_name: the named pair the chat is made with; target_path and draft_path: the
        files, when they were opened as files, and cross_vocab the choice to draft across
        vocabularies made for them."""
        now = self._clock()
        settings = settings or ChatSettings()
        crossed = _cross_vocab_column(target_path, cross_vocab)
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO chats (title, created_at, updated_at, pair_name, settings,"
                " target_path, draft_path, cross_vocab) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (title, now, now, pair_name, settings.to_json(), target_path, draft_path, crossed),
            )
        return ChatRecord(
            int(cur.lastrowid or 0),
            title,
            now,
            now,
            pair_name,
            settings,
            target_path=target_path,
            draft_path=draft_path,
            cross_vocab=None if crossed is None else bool(crossed),
        )

    @db_call("read the chat list")
    def list_chats(self, search: str = "") -> list[ChatRecord]:
        sql = f"SELECT {CHAT_COLUMNS} FROM chats"
        params: tuple[str, ...] = ()
        if search.strip():  # the title or any message's words (LIKE: substrings, any case)
            sql += (
                " WHERE title LIKE ?1 ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m"
                " WHERE m.chat_id = chats.id AND m.content LIKE ?1 ESCAPE '\\')"
            )
            params = ("%" + _like_escape(search.strip()) + "%",)
        sql += " ORDER BY updated_at DESC, id DESC"
        return [_chat(row) for row in self._conn.execute(sql, params)]

    @db_call("read the chat")
    def get_chat(self, chat_id: int) -> ChatRecord | None:
        row = self._conn.execute(
            f"SELECT {CHAT_COLUMNS} FROM chats WHERE id = ?",
            (chat_id,),
        ).fetchone()
        return _chat(row) if row else None

    @db_call("rename the chat")
    def rename_chat(self, chat_id: int, title: str) -> None:
        title = " ".join(title.split()) or DEFAULT_TITLE
        with self._conn:
            self._conn.execute("UPDATE chats SET title = ? WHERE id = ?", (title, chat_id))

    @db_call("save the chat settings")
    def update_chat_settings(self, chat_id: int, settings: ChatSettings) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE chats SET settings = ? WHERE id = ?", (settings.to_json(), chat_id)
            )

    @db_call("save the chat pair")
    def set_chat_pair(
        self,
        chat_id: int,
        pair_name: str | None,
        target_path: str | None = None,
        draft_path: str | None = None,
        cross_vocab: bool | None = None,
    ) -> None:
        crossed = _cross_vocab_column(target_path, cross_vocab)
        with self._conn:
            self._conn.execute(
                "UPDATE chats SET pair_name = ?, target_path = ?, draft_path = ?, cross_vocab = ?"
                " WHERE id = ?",
                (pair_name, target_path, draft_path, crossed, chat_id),
            )

    @db_call("delete the chat")
    def delete_chat(self, chat_id: int) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM chats WHERE id = ?", (chat_id,))

    # messages ----------------------------------------------------------------------------
    @db_call("save the message")
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

    @db_call("save the reply")
    def begin_reply(self, chat_id: int) -> MessageRecord:
        """An empty assistant message marked as streaming (and as this instance's), saved
        before the first token."""
        now = self._clock()
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO messages (chat_id, role, content, status, created_at, owner)"
                " VALUES (?, 'assistant', '', ?, ?, ?)",
                (chat_id, MessageStatus.STREAMING.value, now, self._owner.token),
            )
            self._conn.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (now, chat_id))
        message_id = int(cur.lastrowid or 0)
        return MessageRecord(
            message_id, chat_id, "assistant", "", MessageStatus.STREAMING, None, (), now
        )

    @db_call("save the reply")
    def update_reply(self, message_id: int, content: str, segments: Sequence[Segment] = ()) -> None:
        """Save the text shown so far (called on every UI batch while streaming)."""
        with self._conn:
            self._conn.execute(
                "UPDATE messages SET content = ?, segments = ? WHERE id = ?",
                (content, _segments_json(segments), message_id),
            )

    @db_call("save the reply")
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

    @db_call("read the messages")
    def messages(self, chat_id: int) -> list[MessageRecord]:
        rows = self._conn.execute(
            "SELECT id, chat_id, role, content, status, stats, segments, created_at, notices"
            " FROM messages WHERE chat_id = ? ORDER BY id",
            (chat_id,),
        )
        return [_message(row) for row in rows]

    @db_call("delete the messages")
    def delete_messages_from(self, chat_id: int, message_id: int) -> None:
        """Delete a message and every later one of the chat (regenerate, edit & resend)."""
        with self._conn:
            self._conn.execute(
                "DELETE FROM messages WHERE chat_id = ? AND id >= ?", (chat_id, message_id)
            )

    @db_call("search the messages")
    def first_match(self, chat_id: int, search: str) -> int | None:
        """The id of the chat's first message containing `search` (any case), if any."""
        if not search.strip():
            return None
        row = self._conn.execute(
            "SELECT id FROM messages WHERE chat_id = ? AND content LIKE ? ESCAPE '\\'"
            " ORDER BY id LIMIT 1",
            (chat_id, "%" + _like_escape(search.strip()) + "%"),
        ).fetchone()
        return int(row[0]) if row else None

    @db_call("search the messages")
    def first_matches(self, search: str) -> dict[int, str]:
        """{chat id: content of its first message containing `search` (any case)}, for the
        chats that have one (the search results' snippets)."""
        if not search.strip():
            return {}
        rows = self._conn.execute(
            "SELECT m.chat_id, m.content FROM messages m JOIN (SELECT MIN(id) AS id FROM messages"
            " WHERE content LIKE ? ESCAPE '\\' GROUP BY chat_id) f ON m.id = f.id",
            ("%" + _like_escape(search.strip()) + "%",),
        )
        return {int(chat_id): str(content) for chat_id, content in rows}

    # regenerate variants -------------------------------------------------------------------
    @db_call("keep the earlier reply")
    def keep_as_variant(self, old_id: int, new_id: int) -> None:
        """Regenerate: reply old_id (and its own variants) become variants of reply new_id;
        the old row goes."""
        with self._conn:
            self._conn.execute(
                f"INSERT INTO reply_variants (message_id, {VARIANT_COLUMNS})"
                f" SELECT ?, {VARIANT_COLUMNS} FROM messages WHERE id = ?",
                (new_id, old_id),
            )
            self._conn.execute(
                "UPDATE reply_variants SET message_id = ? WHERE message_id = ?", (new_id, old_id)
            )
            self._conn.execute("DELETE FROM messages WHERE id = ?", (old_id,))

    @db_call("read the reply versions")
    def variant_positions(self, chat_id: int) -> dict[int, tuple[int, int]]:
        """{reply id: (position of the shown version, number of versions)}, oldest first, for
        the replies of the chat that have kept variants."""
        rows = self._conn.execute(
            "SELECT v.message_id, COUNT(*), SUM(v.created_at < m.created_at) FROM reply_variants v"
            " JOIN messages m ON m.id = v.message_id WHERE m.chat_id = ? GROUP BY v.message_id",
            (chat_id,),
        )
        return {int(r[0]): (int(r[2]) + 1, int(r[1]) + 1) for r in rows}

    @db_call("show the other reply")
    def flip_variant(self, message_id: int, step: int) -> MessageRecord | None:
        """Show the version `step` places later (+1) or earlier (-1) instead of the shown one:
        the two swap places. Returns the reply as now shown, or None at either end."""
        current = self._conn.execute(
            f"SELECT {VARIANT_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if current is None:
            return None
        versions = self._conn.execute(
            f"SELECT id, {VARIANT_COLUMNS} FROM reply_variants WHERE message_id = ?"
            " ORDER BY created_at, id",
            (message_id,),
        ).fetchall()
        earlier = [v for v in versions if v[-1] < current[-1]]
        later = [v for v in versions if v[-1] >= current[-1]]
        pick = (later[0] if later else None) if step > 0 else (earlier[-1] if earlier else None)
        if pick is None:
            return None
        sets = ", ".join(f"{c} = ?" for c in VARIANT_COLUMNS.split(", "))
        with self._conn:
            self._conn.execute(
                f"UPDATE messages SET {sets} WHERE id = ?", (*pick[1:], message_id)
            )
            self._conn.execute(
                f"UPDATE reply_variants SET {sets} WHERE id = ?", (*current, pick[0])
            )
        return self.message(message_id)

    @db_call("read the message")
    def message(self, message_id: int) -> MessageRecord | None:
        row = self._conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        return _message(row) if row else None

    @db_call("forget the earlier replies")
    def drop_variants(self, chat_id: int) -> None:
        """The user moved on (sent a new message): the shown replies are the ones kept."""
        with self._conn:
            self._conn.execute(
                "DELETE FROM reply_variants WHERE message_id IN"
                " (SELECT id FROM messages WHERE chat_id = ?)",
                (chat_id,),
            )

    def _recover_interrupted(self) -> int:
        """Replies left 'streaming' by an instance that died (crash, kill -9) are kept and marked
        incomplete; replies another running instance is streaming are left alone."""
        folder = owners_dir(self.path)
        try:
            owners = [
                row[0]
                for row in self._conn.execute(
                    "SELECT DISTINCT owner FROM messages WHERE status = ?",
                    (MessageStatus.STREAMING.value,),
                )
            ]
            dead = [o for o in owners if o != self._owner.token and not owner_alive(folder, o)]
            recovered = 0
            with self._conn:
                for owner in dead:
                    cur = self._conn.execute(
                        "UPDATE messages SET status = ? WHERE status = ? AND owner IS ?",
                        (MessageStatus.INCOMPLETE.value, MessageStatus.STREAMING.value, owner),
                    )
                    recovered += cur.rowcount
        except sqlite3.Error:
            return 0  # left for the next start; reading the history matters more
        return recovered


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _segments_json(segments: Sequence[Segment]) -> str | None:
    return json.dumps([list(s) for s in segments]) if segments else None


CHAT_COLUMNS = (
    "id, title, created_at, updated_at, pair_name, settings, target_path, draft_path, cross_vocab"
)


def _cross_vocab_column(target_path: str | None, cross_vocab: bool | None) -> int | None:
    """1 or 0 for a chat made with files, NULL for a named pair (or a choice not given)."""
    return None if target_path is None or cross_vocab is None else int(cross_vocab)


def _chat(row: tuple) -> ChatRecord:
    try:
        settings, problem = ChatSettings.from_json(row[5]), ""
    except (ValueError, TypeError, AttributeError):
        settings = ChatSettings()
        problem = "this chat's saved settings are unreadable; the defaults are used"
    return ChatRecord(
        id=row[0],
        title=str(row[1]),
        created_at=row[2],
        updated_at=row[3],
        pair_name=row[4],
        settings=settings,
        problem=problem,
        target_path=row[6],
        draft_path=row[7],
        cross_vocab=None if row[8] is None else bool(row[8]),
    )


def _message(row: tuple) -> MessageRecord:
    broken: list[str] = []
    stats = _json_field(row[5], dict, "stats", broken)
    raw_segments = _json_field(row[6], list, "token origins", broken)
    raw_notices = _json_field(row[8], list, "notices", broken)
    try:
        segments = tuple((str(t), str(o)) for t, o in raw_segments or ())
    except (TypeError, ValueError):
        segments = ()
        broken.append("token origins")
    try:
        status = MessageStatus(row[4])
    except ValueError:
        status = MessageStatus.INCOMPLETE
        broken.append("status")
    notices = tuple(str(n) for n in raw_notices or ())
    if broken:
        unreadable = ", ".join(broken)
        notices += (
            f"part of this message's saved data is unreadable ({unreadable}); shown without it",
        )
    return MessageRecord(
        id=row[0],
        chat_id=row[1],
        role=str(row[2]),
        content=str(row[3] or ""),
        status=status,
        stats=stats,
        segments=segments,
        created_at=row[7],
        notices=notices,
    )


def _json_field(text: str | None, kind: type, name: str, broken: list[str]) -> Any:
    """A JSON column's value, or None (noted in broken) when unreadable or of the wrong kind."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, kind):
        broken.append(name)
        return None
    return value


def _lenient_text(data: bytes) -> str:
    """Text columns with invalid UTF-8 (a damaged row) are shown with replacement characters."""
    return data.decode("utf-8", errors="replace")


def _retry_busy(step: Callable[[], object], timeout: float) -> None:
    """Run a statement SQLite may refuse with 'locked' without calling its busy handler
    (changing the journal mode while another connection opens the file)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _open_error(path: Path, exc: BaseException, busy_timeout: float) -> str:
    if isinstance(exc, sqlite3.Error) and "locked" in str(exc):
        return explain("open the chat history", exc, path, busy_timeout)
    if isinstance(exc, OSError):
        return f"cannot open chat history {path}: {exc}"
    return f"chat history {path} is unreadable: {exc}"
