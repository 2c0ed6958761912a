"""Recurrent and hybrid models (Mamba, RWKV, Jamba, LFM2, Qwen3-Next...) cannot roll their state
back a few tokens. The engine learns it from llama.cpp at load and runs them without
speculation, saying so once; never a partial removal that silently clears the cache.

No small recurrent GGUF is at hand, so a real transformer is made to look recurrent at the
boundary the engine detects through (llama_model_is_recurrent / llama_model_is_hybrid), and
llama_memory_seq_rm refuses partial removals as llama.cpp's recurrent memory does."""

from __future__ import annotations

import llama_cpp
import pytest

from specchat.engine.llama.model import CacheRollbackError, LlamaModel
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

GEN = GenerationSettings(max_tokens=20)
TURNS = ["Name a colour.", "And another one?", "Which of the two is warmer?"]


def recurrent_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama_memory_seq_rm behaves as for a recurrent state: a partial removal fails."""
    real_rm = llama_cpp.llama_memory_seq_rm

    def seq_rm(mem, seq, p0, p1):  # type: ignore[no-untyped-def]
        end = llama_cpp.llama_memory_seq_pos_max(mem, seq) + 1
        if 0 < p0 < end:
            return False
        return real_rm(mem, seq, p0, p1)

    monkeypatch.setattr(llama_cpp, "llama_memory_seq_rm", seq_rm)


def _conversation(engine: SpeculativeEngine) -> list[tuple[int, ...]]:
    history: list[Message] = []
    replies = []
    for text in TURNS:
        history.append(Message("user", text))
        done, _ = run(engine.chat(history, GEN))
        replies.append(done.token_ids)
        history.append(Message("assistant", done.text))
    return replies


def _load(real_models, derived_models, draft: bool) -> SpeculativeEngine:
    return SpeculativeEngine.load(
        ModelSettings(path=real_models["smollm2"], n_ctx=1024, n_threads=1),
        ModelSettings(path=derived_models["smollm2-q4_0"], n_ctx=1024, n_threads=1)
        if draft
        else None,
        SpecSettings(mode=DraftMode.MODEL if draft else DraftMode.NONE, draft_max=4,
                     adaptive=False),
    )


def test_truncate_raises_when_llama_cpp_cannot_remove(real_models, monkeypatch):
    model = LlamaModel.open(ModelSettings(path=real_models["smollm2"], n_ctx=256))
    try:
        model.decode(model.tokenize("one two three four five six"), logits="last")
        before = list(model.tokens)
        monkeypatch.setattr(llama_cpp, "llama_memory_seq_rm", lambda *args: False)
        with pytest.raises(CacheRollbackError, match="cannot roll the cache back"):
            model.truncate(3)
        assert model.tokens == before  # nothing cleared behind the caller's back
    finally:
        model.close()


@pytest.mark.parametrize("flag", ["llama_model_is_recurrent", "llama_model_is_hybrid"])
def test_recurrent_target_runs_alone_and_says_so(real_models, derived_models, monkeypatch, flag):
    alone = _load(real_models, derived_models, draft=False)
    try:
        want = _conversation(alone)
    finally:
        alone.close()
    monkeypatch.setattr(llama_cpp, flag, lambda model: True)
    recurrent_memory(monkeypatch)
    engine = _load(real_models, derived_models, draft=True)
    try:
        assert engine.target.keeps_state
        notices = [n for n in engine.info.notices if "recurrent or hybrid" in n]
        assert len(notices) == 1 and "without speculation" in notices[0]
        assert engine.draft_model is None  # not loaded: it could not draft
        got = _conversation(engine)
        assert got == want
        done, _ = run(engine.chat([Message("user", TURNS[0])], GEN))
        assert done.stats.drafted == 0 and done.stats.mode == "none"
    finally:
        engine.close()


def test_recurrent_draft_is_not_used(real_models, derived_models, monkeypatch):
    target = LlamaModel.open(ModelSettings(path=real_models["smollm2"], n_ctx=512))
    monkeypatch.setattr(llama_cpp, "llama_model_is_recurrent", lambda model: True)
    draft = LlamaModel.open(ModelSettings(path=derived_models["smollm2-q4_0"], n_ctx=512))
    engine = SpeculativeEngine(target, draft, SpecSettings(mode=DraftMode.MODEL, draft_max=4))
    try:
        assert draft.keeps_state and not target.keeps_state
        assert any("the draft" in n and "recurrent" in n for n in engine.info.notices)
        done, _ = run(engine.chat([Message("user", TURNS[0])], GEN))
        assert done.stats.drafted == 0
    finally:
        engine.close()
