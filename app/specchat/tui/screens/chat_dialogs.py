"""The chat screen's dialogs on one chat: rename, delete, settings, export, summary, and the
pair picker. Each asks, then writes the history and tells the screen what changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from textual.screen import Screen

from specchat.engine.types import GenerationSettings, SpecSettings
from specchat.errors import SpecchatError
from specchat.store import ChatRecord, ChatSettings, ChatStore, HistoryError, chat_to_markdown
from specchat.tui.conversation import slug
from specchat.tui.history_guard import keeps_running
from specchat.tui.loader import EngineLoader, PairRef
from specchat.tui.screens.confirm import ConfirmScreen
from specchat.tui.screens.pair_picker import PairPickerScreen
from specchat.tui.screens.settings import ChatSettingsScreen
from specchat.tui.screens.summary import SummaryScreen
from specchat.tui.screens.text_prompt import TextPromptScreen

ChatChanged = Callable[[ChatRecord | None], None]  # the chat as the history now holds it


class ChatDialogs:
    """No state of its own. A dialog's answer arrives later, so every answer handler is
    @keeps_running: a chat-history error is shown, and the screen is kept."""

    def __init__(
        self,
        screen: Screen[None],
        store: ChatStore,
        export_dir: Path,
        history_failed: Callable[[HistoryError], None],
    ) -> None:
        self._screen, self._store, self._export_dir = screen, store, export_dir
        self.history_failed = history_failed

    def rename(self, chat: ChatRecord, renamed: ChatChanged) -> None:
        @keeps_running
        def done(self: ChatDialogs, title: str | None) -> None:
            if title:
                self._store.rename_chat(chat.id, title)
                renamed(self._store.get_chat(chat.id))

        self._screen.app.push_screen(
            TextPromptScreen("Rename chat", chat.title), partial(done, self)
        )

    def delete(self, chat: ChatRecord, deleted: Callable[[], Awaitable[None]]) -> None:
        @keeps_running
        async def done(self: ChatDialogs, yes: bool | None) -> None:
            if yes:
                self._store.delete_chat(chat.id)
                self._screen.notify(f"Deleted “{chat.title}”", timeout=3)
                await deleted()

        question = f"Delete the chat “{chat.title}” and all its messages?"
        self._screen.app.push_screen(ConfirmScreen(question, "Delete"), partial(done, self))

    def settings(
        self,
        chat: ChatRecord,
        generation: GenerationSettings,
        spec: SpecSettings,
        saved: ChatChanged,
    ) -> None:
        """The chat's own settings, beside the pair's defaults they override."""
        g, s = generation, spec
        defaults = (
            f"Defaults: temperature {g.temperature:g}, top-k {g.top_k}, top-p {g.top_p:g},"
            f" min-p {g.min_p:g}, max tokens {g.max_tokens}, draft max {s.draft_max},"
            f" p-min {s.p_min:g}, adaptive {'on' if s.adaptive else 'off'}"
        )

        @keeps_running
        def done(self: ChatDialogs, settings: ChatSettings | None) -> None:
            if settings is not None:
                self._store.update_chat_settings(chat.id, settings)
                saved(self._store.get_chat(chat.id))
                self._screen.notify("Chat settings saved", timeout=2)

        self._screen.app.push_screen(
            ChatSettingsScreen(chat.settings, defaults), partial(done, self)
        )

    def export(self, chat: ChatRecord) -> Path | None:
        """The chat as Markdown in the export folder; None (and why, said) when it failed."""
        chat = self._store.get_chat(chat.id) or chat
        path = self._export_dir / f"specchat-{slug(chat.title)}-{chat.id}.md"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            markdown = chat_to_markdown(chat, self._store.messages(chat.id))
            path.write_text(markdown, encoding="utf-8")
        except OSError as exc:
            self._screen.notify(f"Export failed: {exc}", severity="error")
            return None
        self._screen.notify(f"Exported to {path}", title="Export", timeout=6)
        return path

    def summary(self, chat: ChatRecord) -> None:
        all_stats = [r.stats for r in self._store.messages(chat.id) if r.stats]
        self._screen.app.push_screen(SummaryScreen(chat.title, all_stats))

    def pick_pair(
        self, loader: EngineLoader, current: PairRef, picked: Callable[[str], None]
    ) -> None:
        """models.toml's pairs; the one picked goes to `picked` (by name)."""
        try:
            pairs = loader.pairs()
        except SpecchatError as exc:
            self._screen.notify(exc.message, title="Cannot read models.toml", severity="error")
            return
        if not pairs:
            self._screen.notify("models.toml has no pairs.", severity="warning")
            return

        def done(name: str | None) -> None:
            if name:
                picked(name)

        self._screen.app.push_screen(PairPickerScreen(pairs, current), done)
