"""One chat message: Markdown body (streamed), folded thinking, code blocks to copy, optional
origin colouring, final stats.

A message of a long chat that is not on screen yet is mounted *light*: its header and its text
as plain lines (about the same height), two widgets instead of a Markdown tree of dozens. The
chat view turns it into the full message (realize()) when it comes near the view."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import ClassVar

from markdown_it import MarkdownIt
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Collapsible, Label, Markdown, Static
from textual.widgets.markdown import MarkdownFence

from specchat.stats_format import stats_table, summary_line
from specchat.store.records import MessageRecord, MessageStatus
from specchat.tui.clipboard import notify_copy
from specchat.tui.format import ORIGIN_STYLES
from specchat.tui.keys import ACTIONS
from specchat.tui.widgets.live_markdown import BodyStream, LiveMarkdown
from specchat.tui.widgets.thinking import (
    ThinkingBlock,
    split_thinking,
    thinking_figures,
    thinking_title,
)

# a message's parts, top to bottom (all but the header and body are mounted when needed)
PARTS = (
    "message-header",
    "message-thinking",
    "message-body",
    "message-origins",
    "message-notices",
    "code-hint",
    "message-stats",
)
FOLDABLE = ("message-thinking", "message-stats")  # the parts a user folds and unfolds
ROLE_LABEL = {"user": "You", "assistant": "Assistant", "system": "System"}
STATUS_BADGE = {
    MessageStatus.STREAMING: "streaming…",
    MessageStatus.CANCELLED: "cancelled",
    MessageStatus.INCOMPLETE: "incomplete (interrupted)",
    MessageStatus.ERROR: "error",
}


def merge_segments(segments: list[list[str]], tokens: Iterable[tuple[str, str]]) -> None:
    """Append (text, origin) tokens to runs of equal origin, in place."""
    for text, origin in tokens:
        if not text:
            continue
        if segments and segments[-1][1] == origin:
            segments[-1][0] += text
        else:
            segments.append([text, origin])


def origin_content(segments: Sequence[Sequence[str]]) -> Content:
    return Content.assemble(*((text, ORIGIN_STYLES.get(origin, "")) for text, origin in segments))


def _hard_breaks(text: str) -> str:
    return re.sub(r"(?<!\n)\n(?!\n)", "  \n", text)


_PARSER = MarkdownIt("commonmark")


def code_blocks(markdown: str) -> list[str]:
    """The code of each fenced or indented block, in order (as the Markdown view shows them)."""
    blocks = _PARSER.parse(markdown)
    return [t.content.rstrip("\n") for t in blocks if t.type in ("fence", "code_block")]


def _fence_of(widget: Widget | None) -> MarkdownFence | None:
    while widget is not None and not isinstance(widget, MarkdownFence):
        parent = widget.parent
        widget = parent if isinstance(parent, Widget) else None
    return widget


class MessageBox(Vertical, can_focus=True):
    """A message. Focus it: c copies it, y its last code block, 1–9 one code block; a click on
    a code block copies that block."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy message", id="message.copy"),
        Binding("y", "copy_code(0)", "Copy code", id="message.copy_code"),
        *(Binding(str(n), f"copy_code({n})", show=False) for n in range(1, 10)),
    ]

    def __init__(
        self, record: MessageRecord, origin_mode: bool = False, light: bool = False
    ) -> None:
        super().__init__(classes=f"message {record.role}")
        self.light = light  # a placeholder until realize()
        self._record = record
        self.message_id = record.id
        self.role = record.role
        self.text = record.content
        self.status = record.status
        self.stats: Mapping[str, object] | None = record.stats
        self.notices: list[str] = list(record.notices)
        self.segments: list[list[str]] = [list(s) for s in record.segments]
        self.origin_mode = origin_mode
        self.variant: tuple[int, int] | None = None  # (shown, of): replies kept by regenerate
        self.thinking_tokens, self.thinking_ms = thinking_figures(record.stats)
        self._tokens_seen = 0  # while streaming: tokens appended so far
        self._thinking_done = False  # while streaming: </think> seen (or no thinking)
        self._answer_shown = ""  # the answer text written to the Markdown body
        self._stream: BodyStream | None = None
        # the foldable parts (classes) the user unfolded; the chat view shares one set per
        # message id, so that a message mounted again (a long chat) shows them unfolded again
        self.unfolded: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Label(self._header_text(), classes="message-header")
        if self.light:
            yield Static(self._light_text(), classes="message-light", markup=False)
        else:
            yield from self._full_body()

    def _full_body(self) -> ComposeResult:
        # what (nearly) every message needs; the other parts (thinking, notices, code hint)
        # are mounted when first needed: a long chat mounts fewer widgets
        if self.role == "assistant":
            self._answer_shown = split_thinking(self.text).answer
            yield LiveMarkdown(self._answer_shown, classes="message-body")
            yield Static(classes="message-origins")  # hidden until origin colouring is on
        else:
            # a user's line breaks are kept (as Markdown hard breaks); replies follow CommonMark
            yield Markdown(_hard_breaks(self.text), classes="message-body")

    def _find(self, name: str) -> Widget | None:
        return next((c for c in self.children if c.has_class(name)), None)

    def _part(self, name: str, make: Callable[[], Widget]) -> Widget:
        """The child with class `name`, mounted in its place (PARTS order) if not there yet."""
        found = self._find(name)
        if found is not None:
            return found
        widget = make()
        later = PARTS[PARTS.index(name) + 1 :]
        before = next((c for c in self.children if any(c.has_class(n) for n in later)), None)
        self.mount(widget, before=before)
        return widget

    def _light_text(self) -> str:
        """The placeholder: the text as written (the answer of a reply), a blank line as the
        Markdown body ends with, the stats' summary line."""
        text = split_thinking(self.text).answer if self.role == "assistant" else self.text
        stats = f"\n▶ {summary_line(self.stats)}" if self.stats is not None else ""
        return f"{text.strip()}\n{stats}"

    async def realize(self) -> None:
        """The full message in place of the light placeholder (one screen update)."""
        if not self.light:
            return
        self.light = False
        with self.app.batch_update():
            await self.mount_all(list(self._full_body()), after=self._find("message-header"))
            for placeholder in self.query(".message-light"):
                await placeholder.remove()
            self._dress()

    def can_lighten(self) -> bool:
        """Full, and not streaming, focused or showing an unfolded part (thinking, stats)."""
        if self.light or self._stream is not None or self.status is MessageStatus.STREAMING:
            return False
        if self.has_focus_within:
            return False
        return all(part.collapsed for part in self.query(Collapsible))

    async def lighten(self) -> None:
        """Back to the light placeholder (far from the view: fewer widgets to lay out)."""
        if not self.can_lighten():
            return
        self.light = True
        light = Static(self._light_text(), classes="message-light", markup=False)
        with self.app.batch_update():
            await self.mount(light, after=self._find("message-header"))
            parts = [c for c in self.children if c is not light]
            await self.remove_children([c for c in parts if not c.has_class("message-header")])

    def on_mount(self) -> None:
        if not self.light:
            self._dress()

    def _dress(self) -> None:
        """The parts mounted when needed: thinking, origins, notices, code hint, stats."""
        self._show_thinking()
        self._apply_origin_mode()
        self._show_notices()
        self._show_code_hint()
        if self.stats is not None:
            self.mount(self._stats_widget())

    def record(self) -> MessageRecord:
        """The message as shown now (to mount it again later)."""
        return replace(
            self._record,
            id=self.message_id,
            content=self.text,
            status=self.status,
            stats=dict(self.stats) if self.stats is not None else None,
            segments=tuple((str(t), str(o)) for t, o in self.segments),
            notices=tuple(self.notices),
        )

    # streaming ---------------------------------------------------------------------------
    def start_stream(self) -> None:
        self._stream = BodyStream(self.query_one(".message-body", Markdown))

    def resume_stream(self) -> None:
        """Continue: the reply streams again from where it stopped."""
        split = split_thinking(self.text)
        self._thinking_done = split.thinking is None or not split.open
        self._tokens_seen = self.thinking_tokens or 0
        self.status = MessageStatus.STREAMING
        self.query_one(".message-header", Label).update(self._header_text())
        self.start_stream()

    def preview(self, tokens: Sequence[tuple[str, str]]) -> tuple[str, list[list[str]]]:
        """Text and origin runs as they will be once tokens are appended (nothing changes)."""
        segments = [list(s) for s in self.segments]
        merge_segments(segments, tokens)
        return self.text + "".join(t for t, _ in tokens), segments

    async def append(self, tokens: Sequence[tuple[str, str]]) -> str:
        await self.realize()
        text = "".join(t for t, _ in tokens)
        self._count_thinking(tokens)
        self.text += text
        merge_segments(self.segments, tokens)
        if text:
            self._show_thinking()
            await self._show_answer()
        if self.origin_mode:
            self._apply_origin_mode()
        return text

    def _count_thinking(self, tokens: Sequence[tuple[str, str]]) -> None:
        """Thinking tokens: every token up to the one that completes </think>."""
        if self._thinking_done:
            return
        text = self.text
        for piece, _ in tokens:
            text += piece
            self._tokens_seen += 1
            split = split_thinking(text)
            if split.thinking is not None and not split.open:
                self.thinking_tokens, self._thinking_done = self._tokens_seen, True
                return
            if split.open:
                self.thinking_tokens = self._tokens_seen

    async def _show_answer(self) -> None:
        answer = split_thinking(self.text).answer
        if answer == self._answer_shown:
            return
        body = self.query_one(".message-body", Markdown)
        if self._stream is not None and answer.startswith(self._answer_shown):
            delta, self._answer_shown = answer[len(self._answer_shown) :], answer
            if isinstance(body, LiveMarkdown):
                body.stream_text(answer)  # an open code block stays plain until it closes
            await self._stream.write(delta)
            return
        # the start was thinking after all (a template-opened <think>): show the answer anew
        streaming = self._stream is not None
        if self._stream is not None:
            await self._stream.stop()
        if isinstance(body, LiveMarkdown):
            body.end_stream()
        self._answer_shown = answer
        await body.update(answer)
        if streaming:
            self._stream = BodyStream(body)

    def thinking_stats(self, stats: Mapping[str, object] | None) -> dict[str, object] | None:
        """The reply's stats with its thinking's token count and time (its share of the
        generation time), to be saved with it."""
        if stats is None or self.thinking_tokens is None:
            return dict(stats) if stats is not None else None
        out = dict(stats)
        generated, gen_ms = out.get("generated_tokens"), out.get("generation_ms")
        out["thinking_tokens"] = self.thinking_tokens
        if isinstance(generated, int) and generated > 0 and isinstance(gen_ms, (int, float)):
            out["thinking_ms"] = gen_ms * min(self.thinking_tokens, generated) / generated
        return out

    async def finish(
        self,
        text: str,
        status: MessageStatus,
        stats: Mapping[str, object] | None,
        notices: Sequence[str] = (),
    ) -> None:
        await self.realize()
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        for body in self.query(".message-body").results(LiveMarkdown):
            body.end_stream()  # every code block highlighted
        if text != self.text:
            self.text = text
            self._answer_shown = split_thinking(text).answer
            await self.query_one(".message-body", Markdown).update(self._answer_shown)
        self.status, self.stats = status, stats
        if stats:
            self.thinking_tokens, self.thinking_ms = thinking_figures(stats)
        self.notices.extend(notices)
        self.query_one(".message-header", Label).update(self._header_text())
        self._show_thinking()
        self._show_notices()
        self._show_code_hint()
        for old in self.query(".message-stats"):
            await old.remove()
        if stats is not None:
            await self.mount(self._stats_widget())

    async def show_record(self, record: MessageRecord, variant: tuple[int, int] | None) -> None:
        """Show another stored version of this reply in place (a regenerate variant)."""
        self.message_id, self.segments = record.id, [list(s) for s in record.segments]
        self.notices, self.variant = [], variant
        self._thinking_done = True
        self.thinking_tokens, self.thinking_ms = thinking_figures(record.stats)
        self.text = ""  # so that finish() redraws the body
        await self.finish(record.content, record.status, record.stats, record.notices)
        self._apply_origin_mode()

    def set_variant(self, variant: tuple[int, int] | None) -> None:
        self.variant = variant
        self.query_one(".message-header", Label).update(self._header_text())

    def add_notice(self, notice: str) -> None:
        self.notices.append(notice)
        self._show_notices()

    # origin colouring --------------------------------------------------------------------
    def set_origin_mode(self, on: bool) -> None:
        self.origin_mode = on
        self._apply_origin_mode()

    def _apply_origin_mode(self) -> None:
        if self.role != "assistant" or self.light:  # applied when realized
            return
        coloured = self.origin_mode and bool(self.segments)
        origins = self._find("message-origins")
        if coloured:
            origins = self._part("message-origins", lambda: Static(classes="message-origins"))
            assert isinstance(origins, Static)
            origins.update(origin_content(self.segments))
        if origins is not None:
            origins.display = coloured
        for body in self.query(".message-body").results(Markdown):  # none: mounted as app quits
            body.display = not coloured

    # helpers -----------------------------------------------------------------------------
    def _header_text(self) -> Content:
        badge = STATUS_BADGE.get(self.status)
        if badge is None and self.stats and self.stats.get("finish_reason") == "length":
            badge = f"stopped at max tokens · {self._key('continue_reply')} continues"
        header = Content.styled(ROLE_LABEL.get(self.role, self.role), "bold")
        if self.variant is not None and self.variant[1] > 1:
            shown, of = self.variant
            keys = f"{self._key('prev_variant')}/{self._key('next_variant')}"
            header = header + Content("  ") + Content.styled(f"‹ {shown}/{of} ›", "$text-accent")
            header = header + Content.styled(f" {keys}", "$text-muted")
        if badge:
            style = "$text-error" if self.status is MessageStatus.ERROR else "$text-warning"
            header = header + Content("  ") + Content.styled(f"[{badge}]", style)
        return header

    def _key(self, action: str) -> str:
        """The key bound to a screen action (the user's keymap first)."""
        default = next((a.keys for a in ACTIONS if a.id == action), action)
        keymap: Mapping[str, str] = getattr(self.app, "_keymap", {}) if self.is_attached else {}
        return keymap.get(action, default)

    def _show_thinking(self) -> None:
        if self.role != "assistant":
            return
        split = split_thinking(self.text)
        title = thinking_title(self.thinking_tokens, self.thinking_ms, split.open)
        block = self._find("message-thinking")
        if split.thinking is not None:
            unfold = "message-thinking" in self.unfolded
            block = self._part("message-thinking", lambda: ThinkingBlock(collapsed=not unfold))
        if isinstance(block, ThinkingBlock):
            block.show(split.thinking, title)

    def code_blocks(self) -> list[str]:
        answer = split_thinking(self.text).answer if self.role == "assistant" else self.text
        return code_blocks(answer)

    def _show_code_hint(self) -> None:
        count = len(self.code_blocks())
        if count == 0 and self._find("code-hint") is None:
            return
        hint = self._part("code-hint", lambda: Static(classes="code-hint"))
        assert isinstance(hint, Static)
        hint.set_class(count > 0, "has-code")
        which = "1" if count == 1 else f"1–{min(count, 9)}"
        hint.update(f"⧉ copy code: {which} or y (last block), or click a block · c copies all")

    def _show_notices(self) -> None:
        if self.role != "assistant" or self.light:  # shown when realized
            return
        if not self.notices and self._find("message-notices") is None:
            return
        notices = self._part("message-notices", lambda: Static(classes="message-notices"))
        assert isinstance(notices, Static)
        notices.update("\n".join(f"⚠ {n}" for n in self.notices))
        notices.display = bool(self.notices)

    def _stats_widget(self) -> Collapsible:
        assert self.stats is not None
        rows = stats_table(self.stats)
        if self.thinking_tokens is not None:
            rows.append(("thinking tokens", str(self.thinking_tokens)))
        if self.thinking_ms is not None:
            rows.append(("thinking (ms, share of generation)", f"{self.thinking_ms:.0f}"))
        width = max(len(label) for label, _ in rows)
        table = "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
        return Collapsible(
            Static(table, classes="stats-table"),
            title=summary_line(self.stats),
            collapsed="message-stats" not in self.unfolded,
            classes="message-stats",
        )

    def on_collapsible_expanded(self, event: Collapsible.Expanded) -> None:
        self._remember_fold(event.collapsible, unfolded=True)

    def on_collapsible_collapsed(self, event: Collapsible.Collapsed) -> None:
        self._remember_fold(event.collapsible, unfolded=False)

    def _remember_fold(self, part: Collapsible, unfolded: bool) -> None:
        name = next((n for n in FOLDABLE if part.has_class(n)), None)
        if name is not None and part.parent is self:
            (self.unfolded.add if unfolded else self.unfolded.discard)(name)

    def copy_text(self) -> str:
        """What copying the message gives: a reply's answer, without its thinking."""
        if self.role != "assistant":
            return self.text
        split = split_thinking(self.text)
        return self.text if split.thinking is None else split.answer

    def action_copy(self) -> None:
        notify_copy(self.app, self.copy_text(), "Message")

    def action_copy_code(self, number: int) -> None:
        """Copy code block `number` (1-based; 0 = the last one)."""
        blocks = self.code_blocks()
        if not blocks:
            self.notify("This message has no code block.", severity="warning", timeout=3)
            return
        if number > len(blocks):
            self.notify(f"This message has {len(blocks)} code block(s).", severity="warning")
            return
        index = len(blocks) if number == 0 else number
        notify_copy(self.app, blocks[index - 1], f"Code block {index}")

    def on_click(self, event: events.Click) -> None:
        fence = _fence_of(event.widget)
        if fence is None:
            return
        fences = list(self.query(MarkdownFence))
        blocks = self.code_blocks()
        if fence in fences and len(fences) == len(blocks):  # copy the source, as the keys do
            self.action_copy_code(fences.index(fence) + 1)
        else:
            notify_copy(self.app, fence.code, "Code block")
