"""Chat history in SQLite, written as it happens (partial replies included)."""

from specchat.store.errors import HistoryError
from specchat.store.export import chat_to_markdown
from specchat.store.history import ChatStore
from specchat.store.paths import default_db_path
from specchat.store.records import ChatRecord, ChatSettings, MessageRecord, MessageStatus

__all__ = [
    "ChatRecord",
    "ChatSettings",
    "ChatStore",
    "HistoryError",
    "MessageRecord",
    "MessageStatus",
    "chat_to_markdown",
    "default_db_path",
]
