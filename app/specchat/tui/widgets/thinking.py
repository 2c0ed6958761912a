"""Reasoning replies: `<think>…</think>` split from the answer, and the folded block showing it.

Two shapes are recognised: a reply that opens with `<think>` (Qwen3, DeepSeek-R1), and one that
starts inside the thinking because the chat template opened `<think>` in the generation prompt
(the reply then holds only `…</think>answer`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual.widgets import Collapsible, Static

OPEN, CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Split:
    thinking: str | None  # None: the reply has no thinking part
    answer: str
    open: bool = False  # still thinking (no </think> yet)
    pending: bool = False  # the text so far may be the start of "<think>": show nothing yet


def split_thinking(text: str) -> Split:
    """The thinking part (without its tags) and the answer after it."""
    head = text.lstrip()
    if head and OPEN.startswith(head) and head != OPEN:
        return Split(None, "", pending=True)
    if head.startswith(OPEN):
        body = head[len(OPEN) :]
        end = body.find(CLOSE)
        if end < 0:
            return Split(body.strip(), "", open=True)
        return Split(body[:end].strip(), body[end + len(CLOSE) :].lstrip())
    end = text.find(CLOSE)
    if end >= 0 and OPEN not in text[:end]:  # the template opened <think> for the model
        return Split(text[:end].strip(), text[end + len(CLOSE) :].lstrip())
    return Split(None, text)


def answer_only(text: str) -> str:
    """What the model is sent back of an earlier reply: the answer, without its thinking.

    Templates that keep reasoning (Qwen3 with reasoning_content) only keep it for the turn after
    the last user message, which is never an earlier reply, so dropping it is what they do too.
    A reply stopped while still thinking has no answer: nothing of it is sent."""
    split = split_thinking(text)
    return text if split.thinking is None and not split.pending else split.answer


def thinking_title(tokens: int | None, ms: float | None, open_: bool) -> str:
    parts = []
    if tokens:
        parts.append(f"{tokens} tokens")
    if ms is not None and ms > 0:
        parts.append(f"{ms / 1000:.1f} s")
    what = "Thinking…" if open_ else "Thought"
    return f"{what} ({', '.join(parts)})" if parts else what


def thinking_figures(stats: Mapping[str, object] | None) -> tuple[int | None, float | None]:
    if not stats:
        return None, None
    tokens, ms = stats.get("thinking_tokens"), stats.get("thinking_ms")
    return (
        tokens if isinstance(tokens, int) else None,
        float(ms) if isinstance(ms, (int, float)) else None,
    )


class ThinkingBlock(Collapsible):
    """The reply's thinking, folded by default; its title gives the token count and time."""

    def __init__(self, collapsed: bool = True) -> None:
        self._text = Static("", classes="thinking-text", markup=False)
        super().__init__(
            self._text, title="Thinking…", collapsed=collapsed, classes="message-thinking"
        )
        self.display = False

    def show(self, thinking: str | None, title: str) -> None:
        self.display = thinking is not None
        if thinking is not None:
            self._text.update(thinking or "(empty)")
            self.title = title
