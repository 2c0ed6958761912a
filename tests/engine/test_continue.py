"""continue_: a reply stopped at the token limit goes on where it stopped (real llama.cpp)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
    TokenEvent,
)

from .conftest import run

pytestmark = pytest.mark.real

PROMPT = [Message("user", "Name three rivers in Europe and one fact about each.")]


def engine(target: Path, draft: Path | None) -> SpeculativeEngine:
    mode = DraftMode.MODEL if draft else DraftMode.NONE
    s = ModelSettings(path=target, n_ctx=1024)
    d = ModelSettings(path=draft, n_ctx=1024) if draft else None
    return SpeculativeEngine.load(s, d, SpecSettings(mode=mode, draft_max=4, adaptive=False))


@pytest.mark.parametrize("with_draft", [False, True])
def test_continued_reply_equals_the_uninterrupted_one(real_models, with_draft) -> None:
    model = real_models["smollm2"]
    e = engine(model, model if with_draft else None)
    try:
        whole, _ = run(e.chat(PROMPT, GenerationSettings(max_tokens=48)))
        first, _ = run(e.chat(PROMPT, GenerationSettings(max_tokens=20)))
        assert first.stats.finish_reason == "length" and whole.text.startswith(first.text)
        rest, events = run(e.continue_(PROMPT, first.text, GenerationSettings(max_tokens=28)))
        streamed = "".join(ev.text for ev in events if isinstance(ev, TokenEvent))
        assert isinstance(rest, DoneEvent) and streamed == rest.text  # only the new text
        assert first.text + rest.text == whole.text  # greedy: the same reply, in two parts
    finally:
        e.close()
