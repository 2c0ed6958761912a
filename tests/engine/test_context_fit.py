"""A full context drops old turns once, and enough of them that the next several turns keep a
common prefix with the cache (instead of re-reading the whole prompt every turn)."""

from __future__ import annotations

import pytest

from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)

from .conftest import run

pytestmark = pytest.mark.real

GEN = GenerationSettings(max_tokens=8)
REPLY = "Rivers carry water from hills to the sea, shaping valleys and feeding towns on the way."


def test_turns_after_a_drop_reuse_the_cached_prefix(real_models):
    engine = SpeculativeEngine.load(
        ModelSettings(path=real_models["smollm2"], n_ctx=512), None,
        SpecSettings(mode=DraftMode.NONE),
    )
    history = [Message("system", "You are a geography tutor.")]
    turns = []
    try:
        for i in range(16):
            history.append(Message("user", f"Question {i}: tell me one more fact about rivers."))
            done, _ = run(engine.chat(history, GEN))
            turns.append((done.dropped_turns, done.stats.cached_prompt_tokens,
                          done.stats.prompt_tokens))
            history.append(Message("assistant", REPLY))
    finally:
        engine.close()
    first_drop = next(i for i, (dropped, _, _) in enumerate(turns) if dropped)
    reused = 0
    for (dropped, cached, _), (before, _, prev_prompt) in zip(
        turns[first_drop + 1 :], turns[first_drop:], strict=False
    ):
        assert dropped >= before  # dropped turns stay dropped
        if dropped == before:  # no new drop: the previous prompt is all in the cache
            assert cached >= prev_prompt, turns
            reused += 1
    assert reused >= 3, turns
    assert all(prompt + GEN.max_tokens <= 512 for _, _, prompt in turns)
