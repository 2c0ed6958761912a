"""The chat screen's dialogs and chat-level actions: rename, delete, export, settings,
pair picker, summary. Mixed into MainScreen."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from specchat.errors import SpecchatError
from specchat.store import ChatRecord, ChatSettings, ChatStore, chat_to_markdown
from specchat.tui.conversation import slug
from specchat.tui.history_guard import keeps_running
from specchat.tui.screens.confirm import ConfirmScreen
from specchat.tui.screens.pair_picker import PairPickerScreen
from specchat.tui.screens.settings import ChatSettingsScreen
from specchat.tui.screens.summary import SummaryScreen
from specchat.tui.screens.text_prompt import TextPromptScreen

if TYPE_CHECKING:
    from specchat.engine.types import GenerationSettings, SpecSettings
    from specchat.tui.loader import EngineLoader


class ChatActions:
    """Mixed into MainScreen: uses its attributes (below), Screen API (app, notify) and helpers
    (refresh_chat_list, open_chat, _open_latest, _ensure_chat, _busy, load_pair, history_failed).
    Every handler is @keeps_running: a chat-history error is shown, and the screen is kept."""

    store: ChatStore
    loader: EngineLoader
    export_dir: Path
    chat: ChatRecord | None
    pair_name: str | None
    generation: GenerationSettings
    base_spec: SpecSettings

    def action_rename_chat(self) -> None:
        if self.chat is None:
            self.notify("No chat to rename yet.", severity="warning")
            return
        chat = self.chat

        @keeps_running
        def done(self: ChatActions, title: str | None) -> None:
            if title:
                self.store.rename_chat(chat.id, title)
                self.chat = self.store.get_chat(chat.id)
                self.refresh_chat_list()

        self.app.push_screen(TextPromptScreen("Rename chat", chat.title), partial(done, self))

    def action_delete_chat(self) -> None:
        if self.chat is None or self._busy():
            return
        chat = self.chat

        @keeps_running
        async def done(self: ChatActions, yes: bool | None) -> None:
            if yes:
                self.store.delete_chat(chat.id)
                self.notify(f"Deleted “{chat.title}”", timeout=3)
                self.chat = None  # gone, whatever fails next
                await self._open_latest()

        question = f"Delete the chat “{chat.title}” and all its messages?"
        self.app.push_screen(ConfirmScreen(question, "Delete"), partial(done, self))

    @keeps_running
    def action_export_chat(self) -> Path | None:
        if self.chat is None:
            self.notify("No chat to export yet.", severity="warning")
            return None
        chat = self.store.get_chat(self.chat.id) or self.chat
        path = self.export_dir / f"specchat-{slug(chat.title)}-{chat.id}.md"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(chat_to_markdown(chat, self.store.messages(chat.id)), encoding="utf-8")
        except OSError as exc:
            self.notify(f"Export failed: {exc}", severity="error")
            return None
        self.notify(f"Exported to {path}", title="Export", timeout=6)
        return path

    @keeps_running
    def action_chat_settings(self) -> None:
        chat = self._ensure_chat()
        g, s = self.generation, self.base_spec
        defaults = (
            f"Defaults: temperature {g.temperature:g}, top-k {g.top_k}, top-p {g.top_p:g},"
            f" min-p {g.min_p:g}, max tokens {g.max_tokens}, draft max {s.draft_max},"
            f" p-min {s.p_min:g}, adaptive {'on' if s.adaptive else 'off'}"
        )

        @keeps_running
        def done(self: ChatActions, settings: ChatSettings | None) -> None:
            if settings is not None:
                self.store.update_chat_settings(chat.id, settings)
                self.chat = self.store.get_chat(chat.id)
                self.notify("Chat settings saved", timeout=2)

        self.app.push_screen(ChatSettingsScreen(chat.settings, defaults), partial(done, self))

    def action_pick_pair(self) -> None:
        if self._busy():
            return
        try:
            pairs = self.loader.pairs()
        except SpecchatError as exc:
            self.notify(exc.message, title="Cannot read models.toml", severity="error")
            return
        if not pairs:
            self.notify("models.toml has no pairs.", severity="warning")
            return

        def done(name: str | None) -> None:
            if name:
                self.load_pair(name)

        self.app.push_screen(PairPickerScreen(pairs, self.pair_name), done)

    @keeps_running
    def action_chat_summary(self) -> None:
        if self.chat is None:
            self.notify("No chat yet.", severity="warning")
            return
        all_stats = [r.stats for r in self.store.messages(self.chat.id) if r.stats]
        self.app.push_screen(SummaryScreen(self.chat.title, all_stats))
