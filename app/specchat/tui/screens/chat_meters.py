"""The open chat's meters above the prompt: how full its context is (counted on the engine
thread) and its speed beside the target alone (measured once per pair)."""

from __future__ import annotations

from specchat.engine.types import Stats
from specchat.store import ChatRecord, ChatStore, HistoryError
from specchat.tui.conversation import engine_messages, generation_for, stats_from_dict
from specchat.tui.loader import EngineLoader
from specchat.tui.screens.loaded_pair import LoadedPair
from specchat.tui.widgets.context_meter import ContextMeter, speed_text
from specchat.tui.worker import BaselineMeasured, ContextCounted, EngineWorker

BASELINE_TOKENS_DEFAULT = 0  # a loader without baseline_tokens is not measured


class ChatMeters:
    """Owns the target-alone baselines; draws on the ContextMeter widget."""

    def __init__(
        self,
        meter: ContextMeter,
        store: ChatStore,
        loader: EngineLoader,
        worker: EngineWorker,
        pair: LoadedPair,
    ) -> None:
        self._meter, self._store, self._loader = meter, store, loader
        self._worker, self._pair = worker, pair
        self.baselines: dict[str, float | None] = {}  # target-alone tok/s by engine label

    def refresh(self, chat: ChatRecord | None) -> None:
        self.refresh_context(chat)
        self.refresh_speed(chat)

    def refresh_context(self, chat: ChatRecord | None) -> None:
        """Ask the engine thread to count this chat's context (answered by context_counted)."""
        if chat is None or self._pair.state != "ready":
            self._meter.show(None)
            return
        try:
            chat = self._store.get_chat(chat.id) or chat
            messages = engine_messages(chat.settings, self._store.messages(chat.id))
        except HistoryError:
            return  # the meter keeps its last value; the history error is shown elsewhere
        max_tokens = generation_for(self._pair.generation, chat.settings).max_tokens
        self._worker.count(chat.id, messages, max_tokens)

    def context_counted(self, chat: ChatRecord | None, message: ContextCounted) -> None:
        if chat is not None and message.chat_id == chat.id:
            self._meter.show(message.forecast)

    def measure_baseline(self, label: str) -> None:
        tokens = getattr(self._loader, "baseline_tokens", BASELINE_TOKENS_DEFAULT)
        if tokens and label not in self.baselines:
            self.baselines[label] = None
            self._worker.measure_baseline(label, tokens)

    def baseline_measured(self, chat: ChatRecord | None, message: BaselineMeasured) -> None:
        self.baselines[message.label] = message.tokens_per_second
        self.refresh_speed(chat)

    def refresh_speed(self, chat: ChatRecord | None) -> None:
        label, ready = self._pair.label, self._pair.state == "ready"
        measuring = label in self.baselines and self.baselines[label] is None
        baseline = self.baselines.get(label) if ready else None
        text = speed_text(self._chat_stats(chat), baseline, measuring and baseline is None)
        if not ready or label not in self.baselines:
            text = ""  # nothing measured for this pair: no line
        self._meter.show_speed(text)

    def _chat_stats(self, chat: ChatRecord | None) -> list[Stats]:
        if chat is None:
            return []
        try:
            records = self._store.messages(chat.id)
        except HistoryError:
            return []
        return [stats_from_dict(r.stats) for r in records if r.stats]
