"""Where the history lives: the platform's user data dir, or $SPECCHAT_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_DIR_ENV = "SPECCHAT_DATA_DIR"
DB_FILE = "history.sqlite3"


def data_dir() -> Path:
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir("specchat", appauthor=False))


def default_db_path() -> Path:
    return data_dir() / DB_FILE
