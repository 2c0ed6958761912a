"""Schema versions. Append a migration; never edit an applied one."""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: tuple[str, ...] = (
    # 1: chats and messages
    """
    CREATE TABLE chats (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        pair_name TEXT,
        settings TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'complete',
        stats TEXT,
        segments TEXT,
        notices TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX messages_by_chat ON messages(chat_id, id);
    """,
    # 2: which running instance streams a reply (store/owners.py), so that another instance
    # only marks replies of dead instances incomplete
    """
    ALTER TABLE messages ADD COLUMN owner TEXT;
    """,
    # 3: the GGUF files a chat was made with when they were opened as files, not as a named pair
    # (pair_name then stays NULL), so that opening the chat can offer to load them again
    """
    ALTER TABLE chats ADD COLUMN target_path TEXT;
    ALTER TABLE chats ADD COLUMN draft_path TEXT;
    """,
    # 4: earlier versions of a reply kept by regenerate (the shown one stays in messages)
    """
    CREATE TABLE reply_variants (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        content TEXT NOT NULL,
        status TEXT NOT NULL,
        stats TEXT,
        segments TEXT,
        notices TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX reply_variants_by_message ON reply_variants(message_id, created_at);
    """,
    # 5: the cross-vocabulary choice made when the chat's GGUF files were opened (1 or 0; NULL in
    # chats from before, which fall back to the recently-opened list)
    """
    ALTER TABLE chats ADD COLUMN cross_vocab INTEGER;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """A migration script as single statements (executescript would commit on its own)."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def _current_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the missing migrations in order; returns the schema version now in force.

    The version is read and every step applied inside one BEGIN IMMEDIATE transaction: two
    instances starting at once on a new history file take turns, and the second one finds the
    schema already there."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = _current_version(conn)
        if current > SCHEMA_VERSION:
            from specchat.errors import SpecchatError

            raise SpecchatError(
                f"chat history schema v{current} is newer than this specchat (v{SCHEMA_VERSION});"
                " upgrade specchat"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return SCHEMA_VERSION
