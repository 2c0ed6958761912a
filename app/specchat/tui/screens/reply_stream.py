"""The reply in flight: starting one (new, regenerated or continued), its batches as they
stream, its end, and how the latest one reached the screen; and flipping between the versions
regenerate kept.

Every history write happens before the screen changes: saved first, shown after, so every word
on screen is in the history (kill -9 safe). A HistoryError from a step goes up to the screen's
handler, which shows it; while streaming, a failed save is said once and the reply goes on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from textual.screen import Screen

from specchat.engine.types import Message
from specchat.store import ChatRecord, ChatStore, HistoryError, MessageRecord, MessageStatus
from specchat.tui.conversation import (
    LATE_SECONDS,
    ActiveReply,
    ReplyReport,
    engine_messages,
    generation_for,
    spec_for,
)
from specchat.tui.screens.loaded_pair import LoadedPair
from specchat.tui.widgets import ChatView, StatusBar
from specchat.tui.worker import EngineWorker, ReplyBatch, ReplyFinished

CONTINUABLE = (MessageStatus.COMPLETE, MessageStatus.CANCELLED, MessageStatus.INCOMPLETE)


class ReplyStream:
    """Owns the streaming reply and the latest reply's report; draws on the chat view and the
    status bar. One reply at a time: the screen checks `active` before starting one."""

    def __init__(
        self,
        screen: Screen[None],
        store: ChatStore,
        worker: EngineWorker,
        pair: LoadedPair,
        history_failed: Callable[[HistoryError], None],
    ) -> None:
        self._screen, self._store, self._worker, self._pair = screen, store, worker, pair
        self._history_failed = history_failed
        self._view = screen.query_one(ChatView)
        self._status = screen.query_one(StatusBar)
        self.active: ActiveReply | None = None
        # how the latest reply went, and how many ended (the newest only: a chat may be long)
        self.last_report: ReplyReport | None = None
        self.finished = 0

    # starting -----------------------------------------------------------------------------
    async def start(self, chat: ChatRecord, replacing: int | None = None) -> None:
        """A new reply to the last user message; `replacing` (regenerate) is the reply it
        replaces, kept as a variant to flip back to."""
        chat = self._store.get_chat(chat.id) or chat
        records = [r for r in self._store.messages(chat.id) if r.id != replacing]
        messages = engine_messages(chat.settings, records)
        record = self._store.begin_reply(chat.id)
        if replacing is not None:
            self._store.keep_as_variant(replacing, record.id)
            self._view.variants = self._store.variant_positions(chat.id)
            await self._view.remove_message(replacing)
        box = await self._view.add_message(record)
        box.start_stream()
        self.active = ActiveReply(record.id, chat.id, box)
        self._status.start_reply()
        self._generate(record.id, chat, messages)

    async def regenerate(self, chat: ChatRecord) -> None:
        """The last reply again: a reply worth keeping stays as a variant (alt+left /
        alt+right flip), a failed or empty one is deleted."""
        records = self._store.messages(chat.id)
        replacing: int | None = None
        if records and records[-1].role == "assistant":
            last = records[-1]
            if last.content and last.status is not MessageStatus.ERROR:
                replacing = last.id
            else:
                self._store.delete_messages_from(chat.id, last.id)
                await self._view.remove_message(last.id)
            records = records[:-1]
        if not records or records[-1].role != "user":
            self._screen.notify("Nothing to regenerate.", severity="warning")
            return
        await self.start(chat, replacing)

    async def continue_last(self, chat: ChatRecord) -> None:
        """The last reply goes on past the token limit (or a stop): the engine gets its text
        as the start of the reply and sends only what follows."""
        chat = self._store.get_chat(chat.id) or chat
        records = self._store.messages(chat.id)
        last = self._continuable(records)
        if last is None:
            return
        box = await self._view.reveal(last.id)
        if box is None:
            return
        box.resume_stream()
        self.active = ActiveReply(last.id, chat.id, box, prefix=last.content)
        self._status.start_reply()
        self._view.follow()
        messages = engine_messages(chat.settings, records[:-1])
        self._generate(last.id, chat, messages, partial=last.content)

    def _continuable(self, records: list[MessageRecord]) -> MessageRecord | None:
        last = records[-1] if records else None
        if last is None or last.role != "assistant" or not last.content:
            self._screen.notify("No reply to continue.", severity="warning")
            return None
        if last.status not in CONTINUABLE:
            self._screen.notify("That reply failed: regenerate it instead.", severity="warning")
            return None
        return last

    def _generate(
        self, reply_id: int, chat: ChatRecord, messages: list[Message], partial: str | None = None
    ) -> None:
        """On the engine thread, with the pair's defaults under the chat's own settings."""
        generation = generation_for(self._pair.generation, chat.settings)
        spec = spec_for(self._pair.base_spec, chat.settings)
        self._worker.generate(reply_id, messages, generation, spec, partial=partial)

    # streaming ----------------------------------------------------------------------------
    async def on_batch(self, message: ReplyBatch) -> None:
        reply = self.active
        if reply is None or message.reply_id != reply.message_id:
            return
        reply.batches += 1
        reply.missing_batches += message.seq - reply.next_seq
        reply.next_seq = message.seq + 1
        if message.first_token_at is not None:
            latency = time.monotonic() - message.first_token_at
            reply.max_latency = max(reply.max_latency, latency)
            reply.latencies.append(latency)
            reply.late_batches += latency > LATE_SECONDS
        if message.stats is not None:
            reply.last_stats = message.stats
        with self._screen.app.batch_update():  # the batch: one layout, one screen update
            self._status.stream(message.stats, message.speeds)
            for notice in message.notices:
                reply.box.add_notice(notice)
            if message.tokens:
                reply.tokens += len(message.tokens)
                # saved first, shown after: every word on screen is in the history (kill -9
                # safe)
                self._save_partial(reply, *reply.box.preview(message.tokens))
                await reply.box.append(message.tokens)

    def _save_partial(self, reply: ActiveReply, text: str, segments: list[list[str]]) -> None:
        if reply.save_error is not None:
            return  # said once; the reply is saved whole when it ends
        try:
            self._store.update_reply(reply.message_id, text, segments)
        except HistoryError as exc:
            reply.save_error = exc.message
            self._history_failed(exc)

    # ending -------------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Stop the reply in flight (its text stays, marked cancelled); False when none is."""
        if self.active is None:
            return False
        self.active.cancelled = True
        self._worker.cancel()
        return True

    async def on_finished(self, message: ReplyFinished) -> bool:
        """Save and show how the reply ended; False when it was not the reply in flight."""
        reply = self.active
        if reply is None or message.reply_id != reply.message_id:
            return False
        self.active = None
        self._status.show_held()  # the live figures held back, exact
        box, done, notices = reply.box, message.done, []
        stats = done.stats if done is not None else None
        if message.error is not None:
            status, notices = MessageStatus.ERROR, [message.error]
            self._screen.notify(message.error, title="Generation failed", severity="error")
        elif reply.cancelled or (stats is not None and stats.finish_reason == "cancelled"):
            status = MessageStatus.CANCELLED
        else:
            status = MessageStatus.COMPLETE
        if done is not None and done.dropped_turns:
            notices.append(f"{done.dropped_turns} oldest turn(s) left out to fit the context")
        text = reply.prefix + done.text if done is not None else box.text
        stats_dict = box.thinking_stats(stats.to_dict() if stats is not None else None)
        try:  # saved before it is shown, like every batch
            self._store.finish_reply(
                reply.message_id, text, status, stats_dict, box.segments, notices
            )
        except HistoryError as exc:
            if exc.message != reply.save_error:
                self._history_failed(exc)
        await box.finish(text, status, stats_dict, notices)
        self._report(reply, status)
        return True

    def after_finish(self, message: ReplyFinished) -> None:
        """The status bar shows the finished reply's final stats."""
        if message.done is not None and message.done.stats is not None:
            self._status.update_stats(message.done.stats)

    def _report(self, reply: ActiveReply, status: MessageStatus) -> None:
        self.finished += 1
        self.last_report = ReplyReport(
            reply.message_id,
            status,
            reply.batches,
            reply.tokens,
            reply.late_batches,
            reply.missing_batches,
            reply.max_latency,
            tuple(reply.latencies),
        )

    def keep_on_quit(self) -> None:
        """Quitting mid-reply: what was shown is kept, marked cancelled. If this fails the row
        stays 'streaming' and the next start marks it incomplete."""
        if self.active is None:
            return
        box = self.active.box
        with contextlib.suppress(HistoryError):
            self._store.finish_reply(
                self.active.message_id, box.text, MessageStatus.CANCELLED, None, box.segments
            )

    # variants -----------------------------------------------------------------------------
    async def flip(self, chat: ChatRecord, step: int) -> None:
        """Show the last reply's older (-1) or newer (+1) version kept by regenerate."""
        replies = [b for b in self._view.boxes() if b.role == "assistant"]
        if not replies or not replies[-1].variant:
            self._screen.notify("Regenerate keeps earlier replies here; none yet.", timeout=3)
            return
        box = replies[-1]
        record = self._store.flip_variant(box.message_id, step)
        if record is None:
            end = "first" if step < 0 else "last"
            self._screen.notify(f"This is the {end} version of the reply.", timeout=2)
            return
        position = self._store.variant_positions(chat.id).get(box.message_id)
        self._view.variants[box.message_id] = position or (1, 1)
        await box.show_record(record, position)
