"""Speculative decoding engine: a draft proposes, the target verifies. Knows nothing of the UI."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from specchat.engine.context import REFILL_SHARE, drop_oldest_turn, prompt_budget
from specchat.engine.protocol import ChatEngine
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    EngineInfo,
    Event,
    GenerationSettings,
    Message,
    ModelInfo,
    ModelSettings,
    NoticeEvent,
    Origin,
    ProgressEvent,
    SpecSettings,
    Stats,
    TokenEvent,
)

if TYPE_CHECKING:
    from specchat.engine.prompt_cache import PromptCache

__all__ = [
    "REFILL_SHARE",
    "ChatEngine",
    "DoneEvent",
    "DraftMode",
    "EngineInfo",
    "Event",
    "GenerationSettings",
    "Message",
    "ModelInfo",
    "ModelSettings",
    "NoticeEvent",
    "Origin",
    "ProgressEvent",
    "SpecSettings",
    "Stats",
    "TokenEvent",
    "drop_oldest_turn",
    "load_engine",
    "prompt_budget",
]


def load_engine(
    target: ModelSettings,
    draft: ModelSettings | None,
    spec: SpecSettings,
    chat_template: str | None = None,
    cancel: threading.Event | None = None,
    prompt_cache: PromptCache | None = None,
) -> ChatEngine:
    """Load a pair (seconds; stops soon after cancel is set), restoring and keeping prompt
    states in `prompt_cache` when given. llama.cpp is imported here, on first use, not when the
    engine's types are."""
    from specchat.engine.engine import SpeculativeEngine

    engine = SpeculativeEngine.load(target, draft, spec, chat_template=chat_template,
                                    cancel=cancel)
    if prompt_cache is not None:
        engine.use_prompt_cache(prompt_cache)
    return engine
