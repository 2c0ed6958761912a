"""The chat screen's model handling: a message typed while the pair loads, download progress,
the pair each chat remembers, opening GGUF files, the context meter and the speed line.
Mixed into MainScreen."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from specchat.engine.types import Stats
from specchat.store import ChatRecord, ChatStore, HistoryError
from specchat.tui.conversation import engine_messages, generation_for, stats_from_dict
from specchat.tui.loader import EngineLoader, ModelFiles, PairRef, ref_label, same_pair
from specchat.tui.screens.open_model import OpenModelScreen
from specchat.tui.screens.switch_pair import SwitchPairScreen
from specchat.tui.widgets.context_meter import ContextMeter, speed_text
from specchat.tui.widgets.download_progress import DownloadPanel
from specchat.tui.widgets.pending import PendingMessage
from specchat.tui.widgets.prompt import PromptInput

if TYPE_CHECKING:
    from specchat.engine.types import EngineInfo, GenerationSettings
    from specchat.tui.worker import (
        BaselineMeasured,
        ContextCounted,
        DownloadProgress,
        EngineWorker,
    )

BASELINE_TOKENS_DEFAULT = 0  # a loader without baseline_tokens is not measured


class ModelsActions:
    """Mixed into MainScreen: uses its attributes (below), the Screen API (app, notify,
    query_one) and its helpers (send, load_pair, _busy)."""

    store: ChatStore
    loader: EngineLoader
    chat: ChatRecord | None
    pair_name: PairRef
    pending: str | None
    _offer_for: int | None = None  # the chat whose pair is still to be compared
    baselines: dict[str, float | None]
    engine_label: str
    engine_state: str
    generation: GenerationSettings
    info: EngineInfo | None
    worker: EngineWorker | None

    # a message typed while the pair loads -----------------------------------------------------
    def queue_pending(self, text: str) -> None:
        """Keep the message and show it as pending; models_ready() sends it. One at a time: a
        second one stays in the prompt."""
        if self.pending:
            self.notify(  # type: ignore[attr-defined]
                "A message is already waiting for the model; this one stays in the prompt.",
                severity="warning",
            )
            return
        self.pending = text.strip()
        prompt = self.query_one(PromptInput)  # type: ignore[attr-defined]
        prompt.clear()
        box = self.query_one(PendingMessage)  # type: ignore[attr-defined]
        box.wait(self.pending, self.engine_label)
        box.display = True

    def models_ready(self, label: str) -> None:
        self.query_one(DownloadPanel).display = False  # type: ignore[attr-defined]
        box = self.query_one(PendingMessage)  # type: ignore[attr-defined]
        box.display = False
        text, self.pending = self.pending, None
        if text:  # the pending message goes first; the target-alone timing after it
            self.app.call_later(self._send_pending, text, label)  # type: ignore[attr-defined]
        else:
            self._measure_baseline(label)
        self.refresh_context()
        self.refresh_speed()
        self._offer_switch()

    def models_failed(
        self, label: str, error: str, cancelled: bool, download: bool = False
    ) -> None:
        """The download panel keeps a download's error (no network, disk full, checksum) or
        cancel; a failure to load files already downloaded is shown above the prompt only."""
        panel = self.query_one(DownloadPanel)  # type: ignore[attr-defined]
        if download or (panel.display and not panel.complete):
            panel.display = True
            panel.fail(error, cancelled)
        else:
            panel.display = False
        if self.pending:
            self.query_one(PendingMessage).fail(label, error)  # type: ignore[attr-defined]
            prompt = self.query_one(PromptInput)  # type: ignore[attr-defined]
            if not prompt.text.strip():
                prompt.text = self.pending
            self.pending = None
        self.refresh_speed()
        self._offer_switch()

    async def _send_pending(self, text: str, label: str) -> None:
        await self.send(text)  # type: ignore[attr-defined]
        self._measure_baseline(label)

    # download progress ------------------------------------------------------------------------
    def on_download_progress(self, message: DownloadProgress) -> None:
        panel = self.query_one(DownloadPanel)  # type: ignore[attr-defined]
        panel.display = True
        panel.update_file(message.name, message.done, message.total, message.rate, message.eta)

    # the pair a chat remembers ----------------------------------------------------------------
    def pair_record(self) -> tuple[str | None, None, str | None, str | None, bool | None]:
        """create_chat's (pair_name, settings, target_path, draft_path, cross_vocab) for the
        loaded pair."""
        ref = self.pair_name
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
                f for f in self.loader.recent() if (f.target, f.draft) == (files.target, draft)
            ]
            return recent[0] if recent else files
        return chat.pair_name

    def chat_opened(self) -> None:
        """A chat made with another pair than the loaded one offers to switch (once the
        loading pair is known, when one is loading)."""
        self.refresh_context()
        self.refresh_speed()
        self._offer_for = self.chat.id if self.chat is not None else None
        self._offer_switch()

    def _offer_switch(self) -> None:
        chat = self.chat
        if chat is None or getattr(self, "_offer_for", None) != chat.id:
            return
        if self.engine_state not in ("ready", "failed"):
            return  # asked when the load in progress ends
        self._offer_for = None
        wanted = self.chat_ref(chat)
        if wanted is None or same_pair(wanted, self.pair_name):
            return
        loaded = ref_label(self.pair_name) if self.engine_state == "ready" else "no pair"

        def answered(switch: bool | None) -> None:
            if switch:
                self.load_pair(wanted)  # type: ignore[attr-defined]
            else:
                self.notify(  # type: ignore[attr-defined]
                    f"Continuing with {loaded}; this chat was made with {ref_label(wanted)}."
                )

        self.app.push_screen(  # type: ignore[attr-defined]
            SwitchPairScreen(ref_label(wanted), loaded), answered
        )

    # open GGUF files --------------------------------------------------------------------------
    def action_open_model(self) -> None:
        if self._busy():  # type: ignore[attr-defined]
            return

        def chosen(files: ModelFiles | None) -> None:
            if files is not None:
                self.load_pair(files)  # type: ignore[attr-defined]
                self._record_chat_pair(files)

        self.app.push_screen(OpenModelScreen(self.loader), chosen)  # type: ignore[attr-defined]

    def _record_chat_pair(self, files: ModelFiles) -> None:
        """An empty chat takes the files it will be written with."""
        if self.chat is None:
            return
        try:
            if not self.store.messages(self.chat.id):
                draft = str(files.draft) if files.draft else None
                target = str(files.target)
                self.store.set_chat_pair(self.chat.id, None, target, draft, files.cross_vocab)
        except HistoryError as exc:
            self.history_failed(exc)  # type: ignore[attr-defined]

    # context meter and speed line -------------------------------------------------------------
    def refresh_context(self) -> None:
        """Ask the engine thread to count this chat's context (answered by on_context_counted)."""
        meter = self.query_one(ContextMeter)  # type: ignore[attr-defined]
        if self.chat is None or self.worker is None or self.engine_state != "ready":
            meter.show(None)
            return
        try:
            chat = self.store.get_chat(self.chat.id) or self.chat
            messages = engine_messages(chat.settings, self.store.messages(chat.id))
        except HistoryError:
            return  # the meter keeps its last value; the history error is shown elsewhere
        max_tokens = generation_for(self.generation, chat.settings).max_tokens
        self.worker.count(chat.id, messages, max_tokens)

    def on_context_counted(self, message: ContextCounted) -> None:
        if self.chat is not None and message.chat_id == self.chat.id:
            self.query_one(ContextMeter).show(message.forecast)  # type: ignore[attr-defined]

    def _measure_baseline(self, label: str) -> None:
        tokens = getattr(self.loader, "baseline_tokens", BASELINE_TOKENS_DEFAULT)
        if tokens and label not in self.baselines and self.worker is not None:
            self.baselines[label] = None
            self.worker.measure_baseline(label, tokens)

    def on_baseline_measured(self, message: BaselineMeasured) -> None:
        self.baselines[message.label] = message.tokens_per_second
        self.refresh_speed()

    def chat_stats(self) -> list[Stats]:
        if self.chat is None:
            return []
        try:
            records = self.store.messages(self.chat.id)
        except HistoryError:
            return []
        return [stats_from_dict(r.stats) for r in records if r.stats]

    def refresh_speed(self) -> None:
        label = self.engine_label
        measuring = label in self.baselines and self.baselines[label] is None
        baseline = self.baselines.get(label) if self.engine_state == "ready" else None
        text = speed_text(self.chat_stats(), baseline, measuring and baseline is None)
        if self.engine_state != "ready" or (label not in self.baselines):
            text = ""  # nothing measured for this pair: no line
        self.query_one(ContextMeter).show_speed(text)  # type: ignore[attr-defined]

    def reply_done(self) -> None:
        self.refresh_context()
        self.refresh_speed()
