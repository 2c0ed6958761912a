"""Speculative decoding engine: a draft proposes, the target verifies. Knows nothing of the UI."""

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


def load_engine(*args, **kwargs):
    from specchat.engine.engine import load_engine as _load

    return _load(*args, **kwargs)
