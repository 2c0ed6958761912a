"""The pair the chat screen talks to: loading it (download progress, a message typed meanwhile),
what it is once loaded or why it failed, the pair each chat remembers, and switching to it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.screen import Screen
from textual.widgets import Markdown, Static

from specchat.engine.types import EngineInfo, GenerationSettings, SpecSettings
from specchat.store import ChatRecord, ChatStore
from specchat.tui.loader import EngineLoader, ModelFiles, PairRef, ref_label, same_pair
from specchat.tui.screens.open_model import OpenModelScreen
from specchat.tui.screens.switch_pair import SwitchPairScreen
from specchat.tui.welcome import welcome_markdown
from specchat.tui.widgets.download_progress import DownloadPanel
from specchat.tui.widgets.pending import PendingMessage
from specchat.tui.widgets.prompt import PromptInput
from specchat.tui.widgets.status_bar import StatusBar
from specchat.tui.worker import DownloadProgress, EngineFailed, EngineReady, EngineWorker

# a pair's row in the history: create_chat's (pair_name, settings, target, draft, cross_vocab)
PairRecord = tuple[str | None, None, str | None, str | None, bool | None]


class LoadedPair:
    """Owns the loading state; the engine itself is the worker's. Built when the screen mounts
    (it holds the screen's widgets); the screen passes each worker message on."""

    def __init__(
        self, screen: Screen[None], loader: EngineLoader, worker: EngineWorker, label: str
    ) -> None:
        self._screen, self._loader, self._worker = screen, loader, worker
        self._status = screen.query_one(StatusBar)
        self._downloads = screen.query_one(DownloadPanel)
        self._pending_box = screen.query_one(PendingMessage)
        self._prompt = screen.query_one(PromptInput)
        self.state = "idle"  # idle | loading | ready | failed
        self.label = label
        self.error = ""
        self.info: EngineInfo | None = None
        self.base_spec = SpecSettings()
        self.generation = GenerationSettings()
        self.ref: PairRef = None
        self.pending: str | None = None  # a message typed while the pair loads
        self._offer_for: int | None = None  # the chat whose pair is still to be compared

    # loading ------------------------------------------------------------------------------
    def load(self, ref: PairRef) -> None:
        """`ref` None: the pair already named (the start-up one, or the one that failed)."""
        label = self.label if ref is None else ref_label(ref)
        self._downloads.start(label)
        self.state, self.label, self.ref = "loading", label, ref
        self._status.show_loading(label)
        self._worker.load(label, lambda cancel: self._loader.load(ref, cancel))

    def cancel_load(self) -> None:
        """A download or model load stops at its next check."""
        self._worker.cancel_load()
        self._status.show_loading(f"{self.label} (cancelling)")

    def show_loading(self, label: str) -> None:
        self._status.show_loading(label)

    def show_download(self, message: DownloadProgress) -> None:
        self._downloads.display = True
        self._downloads.update_file(
            message.name, message.done, message.total, message.rate, message.eta
        )

    def ready(self, message: EngineReady) -> None:
        self.state, self.info, self.base_spec = "ready", message.info, message.spec
        self.generation = self._loader.generation
        self.ref = self._loader.current
        self._status.show_ready(message.label, message.info)
        self._downloads.display = False
        self._pending_box.display = False

    def take_pending(self) -> str | None:
        """The message that waited for the pair, handed over once (to send now)."""
        text, self.pending = self.pending, None
        return text

    def failed(self, message: EngineFailed) -> None:
        """The download panel keeps a download's error (no network, disk full, checksum) or
        cancel; a failure to load files already downloaded is shown above the prompt only. A
        message that waited goes back to the prompt."""
        self.state, self.error, self.info = "failed", message.error, None
        self._status.show_failed(message.label, message.error)
        panel = self._downloads
        if message.download or (panel.display and not panel.complete):
            panel.display = True
            panel.fail(message.error, message.cancelled)
        else:
            panel.display = False
        if self.pending:
            self._pending_box.fail(message.label, message.error)
            if not self._prompt.text.strip():
                self._prompt.text = self.pending
            self.pending = None

    def show_state(self) -> None:
        """The failure line above the prompt, and the welcome text when it is shown."""
        error = self._screen.query_one("#engine-error", Static)
        error.display = self.state == "failed"
        error.update(
            f"✖ {self.label} could not be loaded: {self.error}\n"
            "Press F4 to choose another pair; your chats are still here."
        )
        for welcome in self._screen.query("#welcome").results(Markdown):
            welcome.update(self.welcome_text())

    def welcome_text(self) -> str:
        return welcome_markdown(self.label, self.state, self.info, self.error)

    # a message typed while the pair loads -------------------------------------------------
    def queue(self, text: str) -> None:
        """Keep the message and show it as pending until take_pending(). One at a time: a
        second one stays in the prompt."""
        if self.pending:
            self._screen.notify(
                "A message is already waiting for the model; this one stays in the prompt.",
                severity="warning",
            )
            return
        self.pending = text.strip()
        self._prompt.clear()
        self._pending_box.wait(self.pending, self.label)
        self._pending_box.display = True

    # the pair a chat remembers ------------------------------------------------------------
    def record(self) -> PairRecord:
        """What a new chat records of the loaded pair."""
        ref = self.ref
        if isinstance(ref, ModelFiles):
            draft = str(ref.draft) if ref.draft else None
            return None, None, str(ref.target), draft, ref.cross_vocab
        return ref, None, None, None, None

    def chat_ref(self, chat: ChatRecord) -> PairRef:
        """What the chat was made with; files keep the cross-vocabulary choice saved with the
        chat (chats from before it was saved: the one in the recent list)."""
        if chat.target_path:
            draft = Path(chat.draft_path) if chat.draft_path else None
            files = ModelFiles(Path(chat.target_path), draft)
            if chat.cross_vocab is not None:
                return ModelFiles(files.target, draft, chat.cross_vocab and draft is not None)
            recent = [
                f for f in self._loader.recent() if (f.target, f.draft) == (files.target, draft)
            ]
            return recent[0] if recent else files
        return chat.pair_name

    @staticmethod
    def record_files(store: ChatStore, chat: ChatRecord | None, files: ModelFiles) -> None:
        """An empty chat takes the files it will be written with."""
        if chat is not None and not store.messages(chat.id):
            draft = str(files.draft) if files.draft else None
            store.set_chat_pair(chat.id, None, str(files.target), draft, files.cross_vocab)

    # switching to a chat's pair -----------------------------------------------------------
    def chat_opened(self, chat: ChatRecord | None) -> None:
        """A chat made with another pair than the loaded one offers to switch (once the
        loading pair is known, when one is loading)."""
        self._offer_for = chat.id if chat is not None else None
        self.offer_switch(chat)

    def offer_switch(self, chat: ChatRecord | None) -> None:
        if chat is None or self._offer_for != chat.id:
            return
        if self.state not in ("ready", "failed"):
            return  # asked when the load in progress ends
        self._offer_for = None
        wanted = self.chat_ref(chat)
        if wanted is None or same_pair(wanted, self.ref):
            return
        loaded = ref_label(self.ref) if self.state == "ready" else "no pair"

        def answered(switch: bool | None) -> None:
            if switch:
                self.load(wanted)
            else:
                self._screen.notify(
                    f"Continuing with {loaded}; this chat was made with {ref_label(wanted)}."
                )

        self._screen.app.push_screen(SwitchPairScreen(ref_label(wanted), loaded), answered)

    def open_files(self, chosen: Callable[[ModelFiles], None]) -> None:
        """The GGUF picker; files picked are loaded, then `chosen` is told."""

        def picked(files: ModelFiles | None) -> None:
            if files is not None:
                self.load(files)
                chosen(files)

        self._screen.app.push_screen(OpenModelScreen(self._loader), picked)
