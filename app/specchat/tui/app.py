"""SpecchatApp: the application object; the chat itself lives in MainScreen."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.screen import Screen

from specchat.store import ChatStore
from specchat.tui import keys
from specchat.tui.loader import EngineLoader
from specchat.tui.screens.main import MainScreen


class SpecchatApp(App[None]):
    TITLE = "specchat"
    CSS_PATH = "specchat.tcss"

    def __init__(
        self,
        store: ChatStore,
        loader: EngineLoader,
        keymap: dict[str, str] | None = None,
        warnings: Sequence[str] = (),
        export_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.store, self.loader = store, loader
        self.export_dir = export_dir or Path.cwd()
        self._startup_keymap = keymap or {}
        self._warnings = list(warnings)
        if store.recovered:
            self._warnings.append(
                f"{store.recovered} reply(ies) interrupted last time were kept, marked incomplete"
            )

    def on_mount(self) -> None:
        if self._startup_keymap:
            self.set_keymap(self._startup_keymap)
        self.push_screen(MainScreen(self.store, self.loader, self.export_dir))
        for warning in self._warnings:
            self.notify(warning, severity="warning", timeout=8)
        self.call_after_refresh(self._freeze_startup_objects)

    @staticmethod
    def _freeze_startup_objects() -> None:
        """Take what start-up built (modules, styles, the app and its first screen: alive as
        long as the app) out of the garbage collector's generations. Each full collection then
        walks only what chats add, and it is those collections, not layout, that make the
        longest pauses while paging through a long chat (tests/tui/test_long_chat.py measures)."""
        gc.collect()
        gc.freeze()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        if main is None:
            return
        for action in keys.ACTIONS:
            shortcut = self._keymap.get(action.id, action.keys)
            yield SystemCommand(
                action.help,
                f"{action.description} · {shortcut}",
                partial(self.run_action, action.id, main),
            )
