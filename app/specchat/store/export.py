"""A chat as a Markdown document."""

from __future__ import annotations

import datetime as dt

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
            s = msg.stats
            lines += [
                "",
                f"<sub>{s.get('generated_tokens')} tokens · {_f(s.get('tokens_per_second'))} tok/s"
                f" · acceptance {_pct(s.get('acceptance_rate'))}"
                f" · {_f(s.get('tokens_per_pass'))} tokens/pass · TTFT {_f(s.get('ttft_ms'), 0)} ms"
                "</sub>",
            ]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines())


def _f(value: object, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "?"


def _pct(value: object) -> str:
    return f"{value * 100:.0f}%" if isinstance(value, (int, float)) else "?"
