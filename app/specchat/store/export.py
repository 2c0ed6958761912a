"""A chat as a Markdown document."""

from __future__ import annotations

import datetime as dt

from specchat.stats_format import markdown_line
from specchat.store.records import ChatRecord, MessageRecord, MessageStatus

_ROLE = {"user": "You", "assistant": "Assistant", "system": "System"}


def chat_to_markdown(chat: ChatRecord, messages: list[MessageRecord]) -> str:
    created = dt.datetime.fromtimestamp(chat.created_at, tz=dt.timezone.utc)
    started = f"{created:%Y-%m-%d %H:%M} UTC"
    lines = [f"# {chat.title}", "", f"_Exported from specchat · started {started}_"]
    if chat.pair_name:
        lines[-1] = lines[-1][:-1] + f" · pair `{chat.pair_name}`_"
    if chat.settings.system_prompt:
        lines += ["", "**System prompt:**", "", _quote(chat.settings.system_prompt)]
    for msg in messages:
        heading = f"## {_ROLE.get(msg.role, msg.role)}"
        if msg.status not in (MessageStatus.COMPLETE, MessageStatus.STREAMING):
            heading += f" ({msg.status.value})"
        lines += ["", heading, "", msg.content.rstrip() or "_(empty)_"]
        if msg.stats:
            lines += ["", markdown_line(msg.stats)]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines())
