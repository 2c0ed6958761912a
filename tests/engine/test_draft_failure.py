"""A failure on the draft side never kills the reply: it goes on with the target alone (the
same tokens, greedy) and says why once."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    NoticeEvent,
    SpecSettings,
)

from .conftest import run

pytestmark = pytest.mark.real

GEN = GenerationSettings(max_tokens=24)
LONG = [Message("user", "Summarise this text. " + "The river runs past the old mill. " * 40)]
SHORT = [Message("user", "Write a haiku about the sea.")]


def _engine(target: Path, draft: Path | None, draft_ctx: int = 1024) -> SpeculativeEngine:
    return SpeculativeEngine.load(
        ModelSettings(path=target, n_ctx=1024),
        ModelSettings(path=draft, n_ctx=draft_ctx) if draft else None,
        SpecSettings(mode=DraftMode.MODEL if draft else DraftMode.NONE, draft_max=4,
                     adaptive=False),
    )


class FailingDrafter:
    """Delegates to the real drafter, except that one method raises."""

    def __init__(self, inner: object, fail_in: str) -> None:
        self.inner = inner
        self.fail_in = fail_in
        self.failures = 0

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.inner, name)
        if name != self.fail_in:
            return attr

        def fail(*args: object, **kwargs: object) -> object:
            self.failures += 1
            raise RuntimeError(f"simulated failure in {name}")

        return fail


def reply(engine: SpeculativeEngine, msgs: list[Message]):
    engine.reset_cache()  # each reply from an empty cache, as the target alone made it
    return run(engine.chat(msgs, GEN))


@pytest.fixture(scope="module")
def target_alone(real_models):
    engine = _engine(real_models["smollm2"], None)
    yield {"long": reply(engine, LONG)[0].token_ids, "short": reply(engine, SHORT)[0].token_ids}
    engine.close()


@pytest.fixture(scope="module")
def spec_engine(real_models, derived_models):
    engine = _engine(real_models["smollm2"], derived_models["smollm2-q4_0"])
    yield engine
    engine.close()


def test_draft_context_overflow(real_models, derived_models, target_alone):
    """The draft's context (256) is smaller than the prompt: it cannot read it."""
    engine = _engine(real_models["smollm2"], derived_models["smollm2-q4_0"], draft_ctx=256)
    try:
        assert engine.draft_model.n_ctx < len(engine.tokenize_chat(LONG))
        done, events = reply(engine, LONG)
        notices = [e for e in events if isinstance(e, NoticeEvent)]
        assert done.token_ids == target_alone["long"]
        assert len(notices) == 1 and "target alone" in notices[0].message
        assert "context" in notices[0].message
        # a short chat fits the draft again: speculation is back, output still the target's
        done, events = reply(engine, SHORT)
        assert done.token_ids == target_alone["short"]
        assert done.stats.drafted > 0
        # the same failure again is not said again
        done, events = reply(engine, LONG)
        assert done.token_ids == target_alone["long"]
        assert not [e for e in events if isinstance(e, NoticeEvent)]
    finally:
        engine.close()


@pytest.mark.parametrize("method", ["begin", "prepare", "draft"])
def test_a_raising_drafter_leaves_the_target_alone(spec_engine, target_alone, method):
    engine = spec_engine
    original = engine._drafter
    failing = FailingDrafter(original, method)
    engine._drafter = failing  # type: ignore[assignment]
    engine._draft_failures.clear()
    try:
        done, events = reply(engine, SHORT)
        notices = [e.message for e in events if isinstance(e, NoticeEvent)]
        assert failing.failures == 1
        assert done.token_ids == target_alone["short"]
        assert len(notices) == 1 and f"simulated failure in {method}" in notices[0]
        assert done.stats.finish_reason in ("stop", "length")
    finally:
        engine._drafter = original


def test_after_a_failure_the_next_reply_drafts_again(spec_engine, target_alone):
    done, _ = reply(spec_engine, SHORT)
    assert done.token_ids == target_alone["short"]
    assert done.stats.drafted > 0


def test_a_draft_decode_error_leaves_the_target_alone(spec_engine, target_alone, monkeypatch):
    """llama_decode failing on the draft's context only (as a broken or foreign draft would)."""
    import llama_cpp

    engine = spec_engine
    engine._draft_failures.clear()
    draft_ctx = engine.draft_model._ctx
    real_decode = llama_cpp.llama_decode

    def decode(ctx, batch):  # type: ignore[no-untyped-def]
        if ctx == draft_ctx:
            return -1
        return real_decode(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", decode)
    try:
        done, events = reply(engine, SHORT)
        notices = [e.message for e in events if isinstance(e, NoticeEvent)]
        assert done.token_ids == target_alone["short"]
        assert len(notices) == 1 and "llama_decode failed" in notices[0]
    finally:
        monkeypatch.undo()
