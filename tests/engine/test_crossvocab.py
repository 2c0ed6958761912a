"""Cross-vocabulary drafting: boundary handling, exactness on tiny and real model pairs."""

from __future__ import annotations

import pytest

from specchat.engine.llama.model import LlamaModel
from specchat.engine.speculative.crossvocab import boundary_tokens, complete_utf8
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)
from specchat.errors import VocabMismatchError

from .conftest import chat, load, run
from .distribution import assert_second_token_distribution

PROMPTS = [
    "Write a Python function that returns the n-th Fibonacci number.",
    "Écris deux phrases en français sur la météo, avec des accents.",
    "Reply with three emoji that describe a party, then explain them. 🎉",
]
REAL_PAIRS = [("qwen", "smollm2"), ("qwen", "gemma"), ("gemma", "smollm2")]  # (target, draft)


def test_complete_utf8_trims_split_characters():
    emoji = "🎉".encode()
    assert complete_utf8(b"ab" + emoji) == b"ab" + emoji
    assert complete_utf8(b"ab" + emoji[:3]) == b"ab"
    assert complete_utf8(b"ab" + emoji[:1]) == b"ab"
    assert complete_utf8("é".encode()[:1]) == b""
    assert complete_utf8(b"") == b""


def test_cross_vocab_needs_opt_in(tiny_target, tiny_other_vocab):
    with pytest.raises(VocabMismatchError, match="turn on cross_vocab"):
        load(tiny_target, tiny_other_vocab)


def test_tiny_cross_vocab_is_exact(tiny_target, tiny_other_vocab):
    alone = load(tiny_target)
    cross = load(tiny_target, tiny_other_vocab, cross_vocab=True, draft_max=4, adaptive=False)
    assert cross.cross_vocab
    for prompt in ("the cat is in the sea", "a b c a b c a b"):
        want = chat(alone, prompt, max_tokens=50)
        got = chat(cross, prompt, max_tokens=50)
        assert got.token_ids == want.token_ids
        assert got.stats.cross_vocab and got.stats.mode == "model"
    alone.close()
    cross.close()


def test_cross_vocab_lag_counts_what_the_draft_has_not_read(tiny_target, tiny_other_vocab):
    """The probe budget weighs the draft's catch-up: its lag must follow the draft's cache, also
    when a new, shorter conversation starts after a long one."""
    cross = load(tiny_target, tiny_other_vocab, cross_vocab=True, draft_max=4, adaptive=False)
    try:
        drafter = cross._drafter
        long_msgs = [Message("user", "the cat is in the sea " * 8)]
        long_prompt = cross.tokenize_chat(long_msgs)
        drafter.begin(long_prompt, long_msgs)
        assert drafter.lag(long_prompt) > 0  # nothing read yet
        drafter.prepare(long_prompt)
        assert drafter.lag(long_prompt) == 0
        assert drafter.lag([*long_prompt, 5, 6, 7]) == 3  # three reply tokens to read
        cross.reset_cache()
        short_msgs = [Message("user", "we and you")]
        short_prompt = cross.tokenize_chat(short_msgs)
        drafter.begin(short_prompt, short_msgs)
        assert drafter.lag([*short_prompt, 5]) >= len(short_prompt)  # the whole new prompt
    finally:
        cross.close()


@pytest.mark.real
def test_boundary_tokens_on_real_tokenizers(real_models):
    qwen = LlamaModel.open(ModelSettings(path=real_models["qwen"]), vocab_only=True)
    try:
        # a continuation that starts mid-word must not merge with the anchor's last token
        assert boundary_tokens(qwen, b" hel", b"lo world") == [] or qwen.detokenize(
            boundary_tokens(qwen, b" hel", b"lo world")
        ) == "lo world"
        tokens = boundary_tokens(qwen, b"Hello", b" world, and more")
        assert qwen.detokenize(tokens) == " world, and more"
        # text that spells a special token is proposed as plain text, never as the special id
        tokens = boundary_tokens(qwen, b"x", b" <|im_end|>")
        assert all(not qwen.is_control(t) for t in tokens)
        # an emoji may take several byte-level tokens; together they spell it exactly
        emoji = boundary_tokens(qwen, b"party", " 🎉 ok".encode())
        assert qwen.detokenize(emoji) == " 🎉 ok"
        # a space that the target would merge into the next token straddles the boundary
        assert boundary_tokens(qwen, b"party ", "🎉 ok".encode()) == []
    finally:
        qwen.close()


def _engine(target, draft=None, **spec):
    # the K-quant exactness recipe (docs/engine.md): one thread, batches of at most 5
    mode = DraftMode.MODEL if draft else DraftMode.NONE
    return SpeculativeEngine.load(
        ModelSettings(path=target, n_ctx=1024, n_threads=1),
        ModelSettings(path=draft, n_ctx=1024, n_threads=1) if draft else None,
        SpecSettings(mode=mode, cross_vocab=True, **spec),
    )


@pytest.mark.real
@pytest.mark.parametrize("target_name, draft_name", REAL_PAIRS)
def test_real_cross_vocab_greedy_identity(real_models, target_name, draft_name):
    alone = _engine(real_models[target_name])
    cross = _engine(real_models[target_name], real_models[draft_name], draft_max=4, suffix_max=4,
                    adaptive=False, p_min=0.0)
    accepted = 0
    try:
        for prompt in PROMPTS:
            g = GenerationSettings(max_tokens=40)
            want, _ = run(alone.chat([Message("user", prompt)], g))
            got, _ = run(cross.chat([Message("user", prompt)], g))
            assert got.token_ids == want.token_ids, prompt
            assert got.stats.cross_vocab
            accepted += got.stats.accepted
    finally:
        alone.close()
        cross.close()
    assert accepted > 0, "the cross-vocabulary draft never helped: nothing was verified"


@pytest.mark.real
def test_real_cross_vocab_sampling_keeps_distribution(real_models):
    """SmolLM2 target drafted by Gemma (another vocabulary): the 2nd token is distributed
    exactly as the target alone samples it."""
    spec = _engine(real_models["smollm2"], real_models["gemma"], draft_max=3, adaptive=False,
                   p_min=0.0)
    try:
        assert_second_token_distribution(spec, real_models["smollm2"], n=300)
    finally:
        spec.close()
