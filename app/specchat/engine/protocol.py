"""The engine's public interface, as a Protocol so the UI and tests can use a scripted fake."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

from specchat.engine.types import EngineInfo, Event, GenerationSettings, Message, SpecSettings


class ChatEngine(Protocol):
    """What the UI and the CLI need from an engine. All calls come from one worker thread."""

    @property
    def info(self) -> EngineInfo: ...

    @property
    def spec(self) -> SpecSettings: ...

    def set_spec(self, spec: SpecSettings) -> None:
        """Change speculative settings between replies (the models stay loaded)."""

    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Render messages with the target's chat template and stream the reply as events.

        The last event is always a DoneEvent (also when cancelled). Raises SpecchatError for
        problems the user can fix (prompt longer than the context, ...)."""
        ...

    def continue_(
        self,
        messages: Sequence[Message],
        partial: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Go on with a reply that stopped (at the token limit): `messages` is the conversation
        before it, `partial` the reply so far. Streams only the new text (DoneEvent too)."""
        ...

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the prompt these messages render to with the target's chat template (what
        a request with them would put in the context, before any turn is dropped)."""
        ...

    def close(self) -> None:
        """Free both models."""
