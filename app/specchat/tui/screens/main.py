"""The chat screen: sidebar, messages, prompt, live status bar. Owns the engine thread."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Markdown, OptionList, Static

from specchat.engine.types import EngineInfo, GenerationSettings, SpecSettings
from specchat.store import ChatRecord, ChatStore, HistoryError, MessageStatus
from specchat.tui import keys
from specchat.tui.clipboard import notify_copy
from specchat.tui.conversation import (
    LATE_SECONDS,
    ActiveReply,
    ReplyReport,
    engine_messages,
    generation_for,
    spec_for,
    stats_from_dict,
    title_from,
)
from specchat.tui.history_guard import keeps_running
from specchat.tui.loader import EngineLoader, PairRef, ref_label
from specchat.tui.screens.chat_actions import ChatActions
from specchat.tui.screens.models_actions import ModelsActions
from specchat.tui.screens.reply_actions import ReplyActions
from specchat.tui.welcome import welcome_markdown
from specchat.tui.widgets import ChatList, ChatView, PromptInput, Sidebar, StatusBar
from specchat.tui.widgets.context_meter import ContextMeter
from specchat.tui.widgets.download_progress import DownloadPanel
from specchat.tui.widgets.pending import PendingMessage
from specchat.tui.worker import (
    EngineFailed,
    EngineLoading,
    EngineReady,
    EngineWorker,
    ReplyBatch,
    ReplyFinished,
)

PROMPT_HINT = "Enter send · Shift+Enter/Ctrl+J newline · Esc stop · Ctrl+P commands"
EDIT_HINT = "Editing your last prompt: Enter resends it (the reply is replaced) · Esc cancels"


class MainScreen(ModelsActions, ChatActions, ReplyActions, Screen[None]):
    BINDINGS = keys.bindings()

    def __init__(self, store: ChatStore, loader: EngineLoader, export_dir: Path) -> None:
        super().__init__(id="main")
        self.store, self.loader, self.export_dir = store, loader, export_dir
        self.chat: ChatRecord | None = None
        self.reply: ActiveReply | None = None
        # how the latest reply went, and how many ended (the newest only: a chat may be long)
        self.last_report: ReplyReport | None = None
        self.replies_finished = 0
        self.editing_from: int | None = None
        self.engine_state = "idle"  # idle | loading | ready | failed
        self.engine_label = loader.initial_label()
        self.engine_error = ""
        self.info: EngineInfo | None = None
        self.base_spec = SpecSettings()
        self.generation = GenerationSettings()
        self.pair_name: PairRef = None
        self.pending: str | None = None  # a message typed while the pair loads
        self.baselines: dict[str, float | None] = {}  # target-alone tok/s by engine label
        self.worker: EngineWorker | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield Sidebar(id="sidebar")
            with Vertical(id="main-column"):
                yield ChatView(id="chat-view")
                yield Static("", id="engine-error")
                yield DownloadPanel(id="download-panel")
                yield PendingMessage(id="pending")
                yield ContextMeter(id="context-meter")
                yield PromptInput(id="prompt")
                yield StatusBar(id="status-bar")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#engine-error").display = False
        self.query_one(DownloadPanel).display = False
        self.query_one(PendingMessage).display = False
        prompt = self.query_one(PromptInput)
        prompt.border_subtitle = PROMPT_HINT
        self.worker = EngineWorker(self)
        await self._open_latest()
        self.load_pair(None)
        prompt.focus()

    async def _open_latest(self) -> None:
        try:
            chats = self.store.list_chats()
        except HistoryError as exc:
            self.history_failed(exc)
            chats = []
        if chats:
            await self.open_chat(chats[0].id)
        if self.chat is None:
            await self.show_welcome()

    def on_unmount(self) -> None:
        # quitting mid-reply: the engine thread ends its pass and closes the engine (bounded
        # wait), then what was shown is kept, marked cancelled
        if self.worker is not None:
            self.worker.shutdown()
        if self.reply is not None:
            box = self.reply.box
            # if this fails the row stays 'streaming'; the next start marks it incomplete
            with contextlib.suppress(HistoryError):
                self.store.finish_reply(
                    self.reply.message_id, box.text, MessageStatus.CANCELLED, None, box.segments
                )

    def history_failed(self, exc: HistoryError) -> None:
        """One clear error; the screen keeps what it shows and the app keeps running."""
        self.notify(exc.message, title="Chat history", severity="error", timeout=10)

    # engine ------------------------------------------------------------------------------
    def load_pair(self, pair: PairRef) -> None:
        assert self.worker is not None
        label = self.engine_label if pair is None else ref_label(pair)
        self.query_one(DownloadPanel).start(label)
        self.engine_state, self.engine_label, self.pair_name = "loading", label, pair
        self.query_one(StatusBar).show_loading(label)
        self.worker.load(label, lambda cancel: self.loader.load(pair, cancel))

    def on_engine_loading(self, message: EngineLoading) -> None:
        self.query_one(StatusBar).show_loading(message.label)
        self._engine_changed()

    def on_engine_ready(self, message: EngineReady) -> None:
        self.engine_state, self.info, self.base_spec = "ready", message.info, message.spec
        self.generation = self.loader.generation
        self.pair_name = self.loader.current
        self.query_one(StatusBar).show_ready(message.label, message.info)
        self.models_ready(message.label)
        for notice in message.info.notices:
            self.notify(notice, title="Engine")
        self._engine_changed()

    def on_engine_failed(self, message: EngineFailed) -> None:
        self.engine_state, self.engine_error, self.info = "failed", message.error, None
        self.query_one(StatusBar).show_failed(message.label, message.error)
        self.models_failed(message.label, message.error, message.cancelled, message.download)
        if message.cancelled:
            self.notify(f"Loading {message.label} was cancelled; F4 picks a pair.", timeout=5)
        else:
            self.notify(message.error, title=f"Could not load {message.label}", severity="error")
        self._engine_changed()

    def _engine_changed(self) -> None:
        error = self.query_one("#engine-error", Static)
        error.display = self.engine_state == "failed"
        error.update(
            f"✖ {self.engine_label} could not be loaded: {self.engine_error}\n"
            "Press F4 to choose another pair; your chats are still here."
        )
        for welcome in self.query("#welcome").results(Markdown):
            welcome.update(self._welcome_text())

    def _welcome_text(self) -> str:
        return welcome_markdown(self.engine_label, self.engine_state, self.info, self.engine_error)

    # chats -------------------------------------------------------------------------------
    def refresh_chat_list(self) -> None:
        """The sidebar; when the history cannot be read it keeps its list and says why."""
        search = self.query_one("#chat-search", Input).value
        current = self.chat.id if self.chat else None
        try:
            chats = self.store.list_chats(search)
            matches = self.store.first_matches(search)  # the results' snippets
        except HistoryError as exc:
            self.history_failed(exc)
            return
        self.query_one(ChatList).show(chats, current, search, matches)

    @keeps_running
    async def open_chat(self, chat_id: int) -> None:
        chat = self.store.get_chat(chat_id)
        records = self.store.messages(chat_id) if chat else []
        self.chat, self.editing_from = chat, None
        variants = self.store.variant_positions(chat_id) if chat else {}
        await self.query_one(ChatView).show_messages(records, self._welcome_text(), variants)
        if chat is not None and chat.problem:
            self.notify(chat.problem, title="Chat history", severity="warning")
        self.refresh_chat_list()
        # the status bar shows this chat's last reply until a new one streams
        last = next((r.stats for r in reversed(records) if r.stats), None)
        status = self.query_one(StatusBar)
        status.start_reply()
        status.update_stats(stats_from_dict(last) if last else None)
        self.chat_opened()

    async def show_welcome(self) -> None:
        self.chat, self.editing_from = None, None
        await self.query_one(ChatView).show_messages([], self._welcome_text())
        self.refresh_chat_list()
        self.chat_opened()

    def _ensure_chat(self, first_prompt: str = "") -> ChatRecord:
        if self.chat is None:
            title = title_from(first_prompt) if first_prompt else "New chat"
            self.chat = self.store.create_chat(title, *self.pair_record())
            self.refresh_chat_list()
        return self.chat

    def _busy(self) -> bool:
        if self.reply is not None:
            self.notify("A reply is streaming: press Esc to stop it first.", severity="warning")
            return True
        return False

    @on(OptionList.OptionSelected, "#chat-list")
    @keeps_running
    async def _chat_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and not self._busy():
            await self.open_chat(int(event.option.id))
            await self.jump_to_match(self.query_one("#chat-search", Input).value)

    @on(Input.Changed, "#chat-search")
    def _search_changed(self) -> None:
        self.refresh_chat_list()

    @on(Button.Pressed, "#new-chat")
    async def _new_chat_pressed(self) -> None:
        await self.action_new_chat()

    # sending and streaming ---------------------------------------------------------------
    @on(PromptInput.Submitted)
    @keeps_running
    async def _submitted(self, event: PromptInput.Submitted) -> None:
        await self.send(event.text)

    @keeps_running
    async def send(self, text: str) -> None:
        """Every history write happens before the screen changes: if one fails, the prompt
        keeps its text and the chat shows what it showed."""
        if self._busy():
            return
        if self.engine_state == "loading" and self.editing_from is None:
            self.queue_pending(text)
            return
        if self.engine_state != "ready":
            why = "still loading" if self.engine_state == "loading" else "not loaded (F4 picks one)"
            self.notify(f"The model is {why}; your text is kept.", severity="warning")
            return
        chat = self._ensure_chat(text)
        view = self.query_one(ChatView)
        if self.editing_from is not None:
            self.store.delete_messages_from(chat.id, self.editing_from)
            self.editing_from = None
            await view.show_messages(self.store.messages(chat.id))
        self.store.drop_variants(chat.id)  # moving on: the replies shown are the ones kept
        record = self.store.add_message(chat.id, "user", text.strip())
        view.variants.clear()
        for shown in view.boxes():
            shown.set_variant(None)
        prompt = self.query_one(PromptInput)
        prompt.clear()
        prompt.border_subtitle = PROMPT_HINT
        await view.add_message(record)
        await self.start_reply()

    @keeps_running
    async def start_reply(self, replacing: int | None = None) -> None:
        """A new reply to the last user message; `replacing` (regenerate) is the reply it
        replaces, kept as a variant to flip back to."""
        assert self.chat is not None and self.worker is not None
        chat = self.store.get_chat(self.chat.id) or self.chat
        records = [r for r in self.store.messages(chat.id) if r.id != replacing]
        messages = engine_messages(chat.settings, records)
        record = self.store.begin_reply(chat.id)
        view = self.query_one(ChatView)
        if replacing is not None:
            self.store.keep_as_variant(replacing, record.id)
            view.variants = self.store.variant_positions(chat.id)
            await view.remove_message(replacing)
        box = await view.add_message(record)
        box.start_stream()
        self.reply = ActiveReply(record.id, chat.id, box)
        self.query_one(StatusBar).start_reply()
        self.worker.generate(
            record.id,
            messages,
            generation_for(self.generation, chat.settings),
            spec_for(self.base_spec, chat.settings),
        )

    async def on_reply_batch(self, message: ReplyBatch) -> None:
        reply = self.reply
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
        status = self.query_one(StatusBar)
        if message.stats is not None:
            reply.last_stats = message.stats
            status.update_stats(message.stats)
        status.add_speeds(message.speeds)
        for notice in message.notices:
            reply.box.add_notice(notice)
        if message.tokens:
            reply.tokens += len(message.tokens)
            # saved first, shown after: every word on screen is in the history (kill -9 safe)
            self._save_partial(reply, *reply.box.preview(message.tokens))
            await reply.box.append(message.tokens)

    def _save_partial(self, reply: ActiveReply, text: str, segments: list[list[str]]) -> None:
        if reply.save_error is not None:
            return  # said once; the reply is saved whole when it ends
        try:
            self.store.update_reply(reply.message_id, text, segments)
        except HistoryError as exc:
            reply.save_error = exc.message
            self.history_failed(exc)

    async def on_reply_finished(self, message: ReplyFinished) -> None:
        reply = self.reply
        if reply is None or message.reply_id != reply.message_id:
            return
        self.reply = None
        box, done, notices = reply.box, message.done, []
        stats = done.stats if done is not None else None
        if message.error is not None:
            status, notices = MessageStatus.ERROR, [message.error]
            self.notify(message.error, title="Generation failed", severity="error")
        elif reply.cancelled or (stats is not None and stats.finish_reason == "cancelled"):
            status = MessageStatus.CANCELLED
        else:
            status = MessageStatus.COMPLETE
        if done is not None and done.dropped_turns:
            notices.append(f"{done.dropped_turns} oldest turn(s) left out to fit the context")
        text = reply.prefix + done.text if done is not None else box.text
        stats_dict = box.thinking_stats(stats.to_dict() if stats is not None else None)
        try:  # saved before it is shown, like every batch
            self.store.finish_reply(
                reply.message_id, text, status, stats_dict, box.segments, notices
            )
        except HistoryError as exc:
            if exc.message != reply.save_error:
                self.history_failed(exc)
        await box.finish(text, status, stats_dict, notices)
        self.reply_done()
        if stats is not None:
            self.query_one(StatusBar).update_stats(stats)
        self.replies_finished += 1
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
        self.refresh_chat_list()

    # actions -----------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self.reply is not None and self.worker is not None:
            self.reply.cancelled = True
            self.worker.cancel()
        elif self.engine_state == "loading" and self.worker is not None:
            self.worker.cancel_load()  # a download or model load stops at its next check
            self.query_one(StatusBar).show_loading(f"{self.engine_label} (cancelling)")
        elif self.editing_from is not None:
            self.editing_from = None
            prompt = self.query_one(PromptInput)
            prompt.clear()
            prompt.border_subtitle = PROMPT_HINT

    @keeps_running
    async def action_new_chat(self) -> None:
        if not self._busy():
            await self.show_welcome()
            self.query_one(PromptInput).focus()

    @keeps_running
    async def action_regenerate(self) -> None:
        if self._busy() or self.chat is None:
            return
        if self.engine_state != "ready":
            self.notify("No model is loaded.", severity="warning")
            return
        records = self.store.messages(self.chat.id)
        replacing: int | None = None
        if records and records[-1].role == "assistant":
            last = records[-1]
            if last.content and last.status is not MessageStatus.ERROR:
                replacing = last.id  # kept as a variant (alt+left / alt+right flip)
            else:
                self.store.delete_messages_from(self.chat.id, last.id)
                await self.query_one(ChatView).remove_message(last.id)
            records = records[:-1]
        if not records or records[-1].role != "user":
            self.notify("Nothing to regenerate.", severity="warning")
            return
        await self.start_reply(replacing)

    @keeps_running
    def action_edit_last(self) -> None:
        if self._busy() or self.chat is None:
            return
        users = [r for r in self.store.messages(self.chat.id) if r.role == "user"]
        if not users:
            self.notify("No prompt to edit yet.", severity="warning")
            return
        self.editing_from = users[-1].id
        prompt = self.query_one(PromptInput)
        prompt.text = users[-1].content
        prompt.border_subtitle = EDIT_HINT
        prompt.move_cursor(prompt.document.end)
        prompt.focus()

    def action_copy_last(self) -> None:
        boxes = [b for b in self.query_one(ChatView).boxes() if b.role == "assistant"]
        if not boxes:
            self.notify("No reply to copy.", severity="warning")
            return
        notify_copy(self.app, boxes[-1].copy_text(), "Last reply")

    def action_toggle_origins(self) -> None:
        view = self.query_one(ChatView)
        view.set_origin_mode(not view.origin_mode)
        self.query_one(StatusBar).set_legend(view.origin_mode)

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        sidebar.display = not sidebar.display

    def action_search_chats(self) -> None:
        self.query_one(Sidebar).display = True
        self.query_one("#chat-search", Input).focus()
