"""Cancel at any moment: during a long prompt's processing (llama.cpp's abort callback), during
model load (its progress callback), and closing the engine while a pass runs in another thread.

No timing: a cancel that "becomes set" after it has been consulted a number of times lands in
the middle of a pass deterministically (the abort callback consults it once per graph node)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from specchat.engine import load_engine
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)
from specchat.errors import LoadCancelled

from .conftest import run

pytestmark = pytest.mark.real

GEN = GenerationSettings(max_tokens=12)
LONG = [Message("user", "Summarise: " + "The river runs past the old mill and the bridge. " * 60)]


class CancelAfter(threading.Event):
    """A cancel event that sets itself the n-th time it is consulted."""

    def __init__(self, n: int, reached: threading.Event | None = None) -> None:
        super().__init__()
        self.n = n
        self.calls = 0
        self.reached = reached

    def is_set(self) -> bool:
        self.calls += 1
        if self.calls == self.n:
            if self.reached is not None:
                self.reached.set()  # another thread acts now, while the pass still runs
            else:
                self.set()
        return super().is_set()


def _engine(target: Path, draft: Path | None = None) -> SpeculativeEngine:
    return SpeculativeEngine.load(
        ModelSettings(path=target, n_ctx=2048, n_threads=1),
        ModelSettings(path=draft, n_ctx=2048, n_threads=1) if draft else None,
        SpecSettings(mode=DraftMode.MODEL if draft else DraftMode.NONE, draft_max=4,
                     adaptive=False),
    )


def test_cancel_during_prompt_processing(real_models, derived_models):
    engine = _engine(real_models["smollm2"], derived_models["smollm2-q4_0"])
    try:
        prompt = engine.tokenize_chat(LONG)
        assert len(prompt) > 600
        cancel = CancelAfter(40)
        done, _ = run(engine.chat(LONG, GEN, cancel))
        assert done.stats.finish_reason == "cancelled"
        assert done.token_ids == ()
        assert cancel.calls > 40  # the abort callback consulted it inside llama_decode...
        assert len(engine.target.tokens) < len(prompt)  # ...and the pass stopped midway
        # the next request is what a fresh target would say
        engine.target.reset()
        again, _ = run(engine.chat(LONG, GEN))
        fresh = _engine(real_models["smollm2"])
        try:
            want, _ = run(fresh.chat(LONG, GEN))
        finally:
            fresh.close()
        assert again.token_ids == want.token_ids
        assert again.stats.finish_reason == "length"
    finally:
        engine.close()


def test_cancel_keeps_the_cache_true(real_models):
    """After an aborted pass, the tokens the engine believes cached are the cached ones: the
    next request reuses them and still says what a fresh target says."""
    engine = _engine(real_models["smollm2"])
    fresh = _engine(real_models["smollm2"])
    try:
        done, _ = run(engine.chat(LONG, GEN, CancelAfter(40)))
        assert done.stats.finish_reason == "cancelled"
        again, _ = run(engine.chat(LONG, GEN))
        want, _ = run(fresh.chat(LONG, GEN))
        assert again.token_ids == want.token_ids
    finally:
        engine.close()
        fresh.close()


def test_load_cancelled(real_models, derived_models):
    settings = ModelSettings(path=real_models["qwen"], n_ctx=512)
    draft = ModelSettings(path=derived_models["qwen-q2_k"], n_ctx=512)
    cancel = CancelAfter(3)  # set while the target's tensors are being read
    with pytest.raises(LoadCancelled, match="cancelled"):
        load_engine(settings, draft, SpecSettings(mode=DraftMode.MODEL), cancel=cancel)
    assert cancel.calls >= 3
    with pytest.raises(LoadCancelled):
        load_engine(settings, None, SpecSettings(mode=DraftMode.NONE), cancel=CancelAfter(1))


def test_close_from_another_thread_during_a_pass(real_models):
    engine = _engine(real_models["qwen"])
    running = threading.Event()
    cancel = CancelAfter(40, reached=running)  # never set: close() is what stops the pass
    result: dict[str, object] = {}

    def worker() -> None:
        try:
            result["done"] = run(engine.chat(LONG, GEN, cancel))[0]
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    assert running.wait(600)
    engine.close()  # while the worker is inside llama_decode
    thread.join(600)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    done = result["done"]
    assert isinstance(done, DoneEvent)
    assert done.stats.finish_reason == "cancelled"
    assert engine.target._ctx is None  # freed, after the pass stopped
