"""The chat screen: sidebar, messages, prompt, live status bar. Owns the engine thread.

A coordinator: the reply in flight is ReplyStream's, the pair and its loading LoadedPair's, the
context and speed meters ChatMeters', the chat list ChatBrowser's, the dialogs ChatDialogs'. The
screen keeps the open chat, routes keys and worker messages to them, and orders what follows."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, OptionList, Static

from specchat.engine.types import EngineInfo
from specchat.store import ChatRecord, ChatStore, HistoryError
from specchat.tui import keys
from specchat.tui.clipboard import notify_copy
from specchat.tui.conversation import ActiveReply, ReplyReport, stats_from_dict, title_from
from specchat.tui.history_guard import keeps_running
from specchat.tui.loader import EngineLoader, ModelFiles, PairRef
from specchat.tui.screens.chat_browser import ChatBrowser
from specchat.tui.screens.chat_dialogs import ChatDialogs
from specchat.tui.screens.chat_meters import ChatMeters
from specchat.tui.screens.loaded_pair import LoadedPair
from specchat.tui.screens.reply_stream import ReplyStream
from specchat.tui.widgets import ChatView, PromptInput, Sidebar, StatusBar
from specchat.tui.widgets.context_meter import ContextMeter
from specchat.tui.widgets.download_progress import DownloadPanel
from specchat.tui.widgets.pending import PendingMessage
from specchat.tui.worker import (
    BaselineMeasured,
    ContextCounted,
    DownloadProgress,
    EngineFailed,
    EngineLoading,
    EngineReady,
    EngineWorker,
    ReplyBatch,
    ReplyFinished,
)


class MainScreen(Screen[None]):
    BINDINGS = keys.bindings()

    # made when the screen mounts: they hold its widgets, and the worker starts its thread
    worker: EngineWorker
    pair: LoadedPair
    replies: ReplyStream
    meters: ChatMeters
    browser: ChatBrowser

    def __init__(self, store: ChatStore, loader: EngineLoader, export_dir: Path) -> None:
        super().__init__(id="main")
        self.store, self.loader = store, loader
        self.chat: ChatRecord | None = None
        self.dialogs = ChatDialogs(self, store, export_dir, self.history_failed)

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
        self.worker = EngineWorker(self)
        self.pair = LoadedPair(self, self.loader, self.worker, self.loader.initial_label())
        self.replies = ReplyStream(self, self.store, self.worker, self.pair, self.history_failed)
        meter = self.query_one(ContextMeter)
        self.meters = ChatMeters(meter, self.store, self.loader, self.worker, self.pair)
        self.browser = ChatBrowser(self, self.store, self.history_failed)
        await self._open_latest()
        self.load_pair(None)
        self.query_one(PromptInput).focus()

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
        self.worker.shutdown()
        self.replies.keep_on_quit()

    def history_failed(self, exc: HistoryError) -> None:
        """One clear error; the screen keeps what it shows and the app keeps running."""
        self.notify(exc.message, title="Chat history", severity="error", timeout=10)

    # the parts' state, read by tests ------------------------------------------------------
    @property
    def reply(self) -> ActiveReply | None:
        return self.replies.active

    @property
    def last_report(self) -> ReplyReport | None:
        return self.replies.last_report

    @property
    def replies_finished(self) -> int:
        return self.replies.finished

    @property
    def engine_state(self) -> str:
        return self.pair.state

    @property
    def engine_error(self) -> str:
        return self.pair.error

    @property
    def info(self) -> EngineInfo | None:
        return self.pair.info

    @property
    def pending(self) -> str | None:
        return self.pair.pending

    @property
    def pair_name(self) -> PairRef:
        return self.pair.ref

    # the pair -----------------------------------------------------------------------------
    def load_pair(self, pair: PairRef) -> None:
        self.pair.load(pair)

    def on_engine_loading(self, message: EngineLoading) -> None:
        self.pair.show_loading(message.label)
        self.pair.show_state()

    def on_engine_ready(self, message: EngineReady) -> None:
        self.pair.ready(message)
        waiting = self.pair.take_pending()
        if waiting:  # the pending message goes first; the target-alone timing after it
            self.app.call_later(self._send_pending, waiting, message.label)
        else:
            self.meters.measure_baseline(message.label)
        self.meters.refresh(self.chat)
        self.pair.offer_switch(self.chat)
        for notice in message.info.notices:
            self.notify(notice, title="Engine")
        self.pair.show_state()

    def on_engine_failed(self, message: EngineFailed) -> None:
        self.pair.failed(message)
        self.meters.refresh_speed(self.chat)
        self.pair.offer_switch(self.chat)
        if message.cancelled:
            self.notify(f"Loading {message.label} was cancelled; F4 picks a pair.", timeout=5)
        else:
            self.notify(message.error, title=f"Could not load {message.label}", severity="error")
        self.pair.show_state()

    async def _send_pending(self, text: str, label: str) -> None:
        await self.send(text)
        self.meters.measure_baseline(label)

    def on_download_progress(self, message: DownloadProgress) -> None:
        self.pair.show_download(message)

    def on_context_counted(self, message: ContextCounted) -> None:
        self.meters.context_counted(self.chat, message)

    def on_baseline_measured(self, message: BaselineMeasured) -> None:
        self.meters.baseline_measured(self.chat, message)

    # chats -------------------------------------------------------------------------------
    def refresh_chat_list(self) -> None:
        self.browser.refresh(self.chat)

    @keeps_running
    async def open_chat(self, chat_id: int) -> None:
        chat = self.store.get_chat(chat_id)
        records = self.store.messages(chat_id) if chat else []
        self.chat = chat
        self.query_one(PromptInput).editing_from = None  # an edit belongs to the chat left
        variants = self.store.variant_positions(chat_id) if chat else {}
        await self.query_one(ChatView).show_messages(records, self.pair.welcome_text(), variants)
        if chat is not None and chat.problem:
            self.notify(chat.problem, title="Chat history", severity="warning")
        self.refresh_chat_list()
        # the status bar shows this chat's last reply until a new one streams
        last = next((r.stats for r in reversed(records) if r.stats), None)
        status = self.query_one(StatusBar)
        status.start_reply()
        status.update_stats(stats_from_dict(last) if last else None)
        self._chat_opened()

    async def show_welcome(self) -> None:
        self.chat = None
        self.query_one(PromptInput).editing_from = None
        await self.query_one(ChatView).show_messages([], self.pair.welcome_text())
        self.refresh_chat_list()
        self._chat_opened()

    def _chat_opened(self) -> None:
        self.meters.refresh(self.chat)
        self.pair.chat_opened(self.chat)

    def _ensure_chat(self, first_prompt: str = "") -> ChatRecord:
        if self.chat is None:
            title = title_from(first_prompt) if first_prompt else "New chat"
            self.chat = self.store.create_chat(title, *self.pair.record())
            self.refresh_chat_list()
        return self.chat

    def _chat_changed(self, chat: ChatRecord | None) -> None:
        """A dialog changed the open chat (its title or settings)."""
        self.chat = chat

    async def _chat_deleted(self) -> None:
        self.chat = None  # gone, whatever fails next
        await self._open_latest()

    def _busy(self) -> bool:
        if self.replies.active is not None:
            self.notify("A reply is streaming: press Esc to stop it first.", severity="warning")
            return True
        return False

    def _model_ready(self) -> bool:
        if self.pair.state != "ready":
            self.notify("No model is loaded.", severity="warning")
            return False
        return True

    @on(OptionList.OptionSelected, "#chat-list")
    @keeps_running
    async def _chat_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and not self._busy():
            await self.open_chat(int(event.option.id))
            await self.browser.show_match(self.chat)

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
        state, prompt = self.pair.state, self.query_one(PromptInput)
        if state == "loading" and prompt.editing_from is None:
            self.pair.queue(text)
            return
        if state != "ready":
            why = "still loading" if state == "loading" else "not loaded (F4 picks one)"
            self.notify(f"The model is {why}; your text is kept.", severity="warning")
            return
        chat = self._ensure_chat(text)
        view = self.query_one(ChatView)
        if prompt.editing_from is not None:
            self.store.delete_messages_from(chat.id, prompt.editing_from)
            prompt.editing_from = None
            await view.show_messages(self.store.messages(chat.id))
        self.store.drop_variants(chat.id)  # moving on: the replies shown are the ones kept
        record = self.store.add_message(chat.id, "user", text.strip())
        view.variants.clear()
        for shown in view.boxes():
            shown.set_variant(None)
        prompt.reset_prompt()
        await view.add_message(record)
        await self.replies.start(chat)

    async def on_reply_batch(self, message: ReplyBatch) -> None:
        await self.replies.on_batch(message)

    async def on_reply_finished(self, message: ReplyFinished) -> None:
        if await self.replies.on_finished(message):
            self.meters.refresh(self.chat)
            self.replies.after_finish(message)
            self.refresh_chat_list()

    # actions -----------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self.replies.cancel():
            return
        if self.pair.state == "loading":
            self.pair.cancel_load()
        elif (prompt := self.query_one(PromptInput)).editing_from is not None:
            prompt.editing_from = None
            prompt.reset_prompt()

    @keeps_running
    async def action_new_chat(self) -> None:
        if not self._busy():
            await self.show_welcome()
            self.query_one(PromptInput).focus()

    @keeps_running
    async def action_regenerate(self) -> None:
        if not self._busy() and self.chat is not None and self._model_ready():
            await self.replies.regenerate(self.chat)

    @keeps_running
    async def action_continue_reply(self) -> None:
        if not self._busy() and self.chat is not None and self._model_ready():
            await self.replies.continue_last(self.chat)

    async def action_prev_variant(self) -> None:
        await self._flip(-1)

    async def action_next_variant(self) -> None:
        await self._flip(+1)

    @keeps_running
    async def _flip(self, step: int) -> None:
        if not self._busy() and self.chat is not None:
            await self.replies.flip(self.chat, step)

    @keeps_running
    def action_edit_last(self) -> None:
        if self._busy() or self.chat is None:
            return
        users = [r for r in self.store.messages(self.chat.id) if r.role == "user"]
        if not users:
            self.notify("No prompt to edit yet.", severity="warning")
            return
        self.query_one(PromptInput).start_editing(users[-1].id, users[-1].content)

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

    # dialogs ------------------------------------------------------------------------------
    def action_rename_chat(self) -> None:
        if self.chat is None:
            self.notify("No chat to rename yet.", severity="warning")
            return
        self.dialogs.rename(self.chat, self._renamed)

    def _renamed(self, chat: ChatRecord | None) -> None:
        self.chat = chat
        self.refresh_chat_list()

    def action_delete_chat(self) -> None:
        if self.chat is not None and not self._busy():
            self.dialogs.delete(self.chat, self._chat_deleted)

    @keeps_running
    def action_export_chat(self) -> Path | None:
        if self.chat is None:
            self.notify("No chat to export yet.", severity="warning")
            return None
        return self.dialogs.export(self.chat)

    @keeps_running
    def action_chat_settings(self) -> None:
        chat = self._ensure_chat()
        self.dialogs.settings(chat, self.pair.generation, self.pair.base_spec, self._chat_changed)

    @keeps_running
    def action_chat_summary(self) -> None:
        if self.chat is None:
            self.notify("No chat yet.", severity="warning")
            return
        self.dialogs.summary(self.chat)

    def action_pick_pair(self) -> None:
        if not self._busy():
            self.dialogs.pick_pair(self.loader, self.pair.ref, self.load_pair)

    def action_open_model(self) -> None:
        if not self._busy():
            self.pair.open_files(self._record_chat_files)

    def _record_chat_files(self, files: ModelFiles) -> None:
        try:
            LoadedPair.record_files(self.store, self.chat, files)
        except HistoryError as exc:
            self.history_failed(exc)
