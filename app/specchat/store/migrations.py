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
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the missing migrations in order; returns the schema version now in force."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    current = int(row[0] or 0)
    if current > SCHEMA_VERSION:
        from specchat.errors import SpecchatError

        raise SpecchatError(
            f"chat history schema v{current} is newer than this specchat (v{SCHEMA_VERSION});"
            " upgrade specchat"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with conn:
            conn.executescript(f"BEGIN; {MIGRATIONS[version - 1]}")
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
    return SCHEMA_VERSION
