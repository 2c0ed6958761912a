"""Rows of the history, as dataclasses."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, fields


class MessageStatus(str, enum.Enum):
    COMPLETE = "complete"
    STREAMING = "streaming"  # being written now (by the instance in the owner column of the row)
    CANCELLED = "cancelled"  # the user stopped the reply; the partial text is kept
    INCOMPLETE = "incomplete"  # the app stopped (crash, kill) while the reply streamed
    ERROR = "error"


@dataclass(frozen=True)
class ChatSettings:
    """Per-chat system prompt and generation settings. None = the model request's default."""

    system_prompt: str = ""
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    draft_max: int | None = None
    p_min: float | None = None
    adaptive: bool | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ChatSettings:
        if not text:
            return cls()
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass(frozen=True)
class ChatRecord:
    id: int
    title: str
    created_at: float
    updated_at: float
    pair_name: str | None = None
    settings: ChatSettings = field(default_factory=ChatSettings)
    problem: str = ""  # set when part of the saved row could not be read
    target_path: str | None = None  # the files the chat was made with, when not a named pair
    draft_path: str | None = None
    cross_vocab: bool | None = None  # for files: drafting across vocabularies (None: not saved)


Segment = tuple[str, str]  # (text, origin) runs: origin is "draft", "target" or "" (unknown)


@dataclass(frozen=True)
class MessageRecord:
    id: int
    chat_id: int
    role: str  # "system" | "user" | "assistant"
    content: str
    status: MessageStatus = MessageStatus.COMPLETE
    stats: dict[str, object] | None = None  # the engine's Stats.to_dict(), verbatim
    segments: tuple[Segment, ...] = ()
    created_at: float = 0.0
    notices: tuple[str, ...] = ()
