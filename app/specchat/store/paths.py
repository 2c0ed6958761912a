"""Where the history lives: in specchat's data folder (config.paths.data_dir)."""

from __future__ import annotations

from pathlib import Path

from specchat.config.paths import data_dir

DB_FILE = "history.sqlite3"


def default_db_path() -> Path:
    return data_dir() / DB_FILE
