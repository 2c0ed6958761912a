"""Pure helpers: what the engine is sent, per-chat settings applied, reply bookkeeping."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from specchat.engine.types import GenerationSettings, Message, SpecSettings, Stats
from specchat.store.records import ChatSettings, MessageRecord, MessageStatus
from specchat.tui.widgets.message import MessageBox
from specchat.tui.widgets.thinking import answer_only

LATE_SECONDS = 0.25  # a batch shown later than this after its first token arrived is "late"
_GEN_FIELDS = ("temperature", "top_k", "top_p", "min_p", "seed", "max_tokens")
_SPEC_FIELDS = ("draft_max", "p_min", "adaptive")


TURN_JOIN = "\n\n"  # between two user messages sent as one turn


def engine_messages(settings: ChatSettings, records: list[MessageRecord]) -> list[Message]:
    """The conversation as the engine sees it, with roles alternating user/assistant (strict
    templates refuse anything else). An exchange whose reply failed is left out, user message
    included (it may be what failed); user messages left next to each other by an empty or
    cancelled-before-any-text reply are sent as one turn, joined by a blank line. Earlier
    replies are sent without their <think>…</think> part (see thinking.answer_only)."""
    out: list[Message] = []
    if settings.system_prompt.strip():
        out.append(Message("system", settings.system_prompt))
    for r in _without_failed_exchanges(records):
        content = answer_only(r.content) if r.role == "assistant" else r.content
        if r.role in ("user", "assistant") and content:
            _append_turn(out, Message(r.role, content))  # type: ignore[arg-type]
    return out


def _without_failed_exchanges(records: list[MessageRecord]) -> list[MessageRecord]:
    """Drops each errored reply and the user messages it answered."""
    kept: list[MessageRecord] = []
    for r in records:
        if r.role == "assistant" and r.status is MessageStatus.ERROR:
            while kept and kept[-1].role == "user":
                kept.pop()
            continue
        kept.append(r)
    return kept


def _append_turn(out: list[Message], message: Message) -> None:
    if out and out[-1].role == message.role and message.role != "system":
        out[-1] = Message(message.role, out[-1].content + TURN_JOIN + message.content)
    else:
        out.append(message)


def generation_for(base: GenerationSettings, chat: ChatSettings) -> GenerationSettings:
    changes = {k: getattr(chat, k) for k in _GEN_FIELDS if getattr(chat, k) is not None}
    return replace(base, **changes)


def spec_for(base: SpecSettings, chat: ChatSettings) -> SpecSettings:
    changes = {k: getattr(chat, k) for k in _SPEC_FIELDS if getattr(chat, k) is not None}
    return replace(base, **changes)


def stats_from_dict(raw: Mapping[str, object]) -> Stats:
    """A stored reply's stats back as the engine's Stats (unknown keys ignored)."""
    names = {f.name for f in fields(Stats)}
    return Stats(**{k: v for k, v in raw.items() if k in names})  # type: ignore[arg-type]


def title_from(prompt: str, limit: int = 40) -> str:
    line = " ".join(prompt.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:50] or "chat"


@dataclass
class ActiveReply:
    """The reply being streamed, and how well the UI kept up with it."""

    message_id: int
    chat_id: int
    box: MessageBox
    prefix: str = ""  # Continue: the reply's text before this run (the engine sends only new)
    cancelled: bool = False
    save_error: str | None = None  # the history write that failed while streaming (said once)
    last_stats: Stats | None = None
    batches: int = 0
    tokens: int = 0
    late_batches: int = 0
    missing_batches: int = 0  # gaps in the batch sequence numbers (should stay 0)
    max_latency: float = 0.0
    next_seq: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ReplyReport:
    """How a reply's batches reached the screen, kept for the latest reply (tests read it)."""

    message_id: int
    status: MessageStatus
    batches: int
    tokens: int
    late_batches: int
    missing_batches: int
    max_latency: float
    latencies: tuple[float, ...] = ()  # per batch: seconds from its first token to display
