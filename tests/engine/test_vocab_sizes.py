"""Draft and target whose vocabularies differ only by padding ids at the end (a same-family
pair such as Qwen2.5-7B / 0.5B): sampling keeps the target's distribution in both directions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specchat.engine.llama.compat import vocab_mismatch
from specchat.engine.llama.model import LlamaModel
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.speculative.sampling import distribution
from specchat.engine.speculative.verify import verify_sampling
from specchat.engine.types import DraftMode, GenerationSettings, ModelSettings, SpecSettings

from .conftest import run
from .distribution import GEN, MESSAGES, assert_second_token_distribution
from .padded_gguf import pad_vocabulary

PAD = 100  # padding ids added (llama.cpp pairs models whose sizes differ by up to 128)


def _engine(target: Path, draft: Path) -> SpeculativeEngine:
    return SpeculativeEngine.load(
        ModelSettings(path=target, n_ctx=1024, n_threads=1),
        ModelSettings(path=draft, n_ctx=1024, n_threads=1),
        SpecSettings(mode=DraftMode.MODEL, draft_max=3, adaptive=False),
    )


def _likely_tokens(path: Path, prompt: list[int], top: int = 6) -> list[int]:
    """The model's top tokens at the first two generated positions (top-k of GEN)."""
    m = LlamaModel.open(ModelSettings(path=path, n_ctx=1024))
    try:
        m.decode(prompt, logits="last")
        first = [int(t) for t in np.argsort(m.logits(-1))[-top:]]
        found = list(first)
        for t1 in first:
            m.truncate(len(prompt))
            m.decode([t1], logits="last")
            found += [int(t) for t in np.argsort(m.logits(-1))[-top:] if int(t) not in found]
        return found
    finally:
        m.close()


@pytest.fixture(scope="module")
def padded_target(real_models, tmp_path_factory) -> Path:
    """SmolLM2 with PAD zero rows: ids no other SmolLM2 has, (almost) never sampled."""
    out = tmp_path_factory.mktemp("padded") / "smollm2-padded.gguf"
    return pad_vocabulary(real_models["smollm2"], out, [None] * PAD)


def test_unequal_vocabularies_keep_the_target_distribution():
    """Exact check of verify_sampling: p has ids q lacks and q has ids p lacks."""
    rng = np.random.default_rng(0)
    settings = GenerationSettings(temperature=1.0)
    p_logits = np.log(np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32))  # target: 4 ids
    q_small = np.array([0.7, 0.3, 0.0], dtype=np.float32)  # draft lacks id 3
    q_large = np.array([0.1, 0.1, 0.1, 0.1, 0.6], dtype=np.float32)  # id 4: draft only
    p = distribution(p_logits, settings)
    for q in (q_small, q_large):
        counts = np.zeros(4)
        n = 40_000
        for _ in range(n):
            proposed = int(rng.choice(len(q), p=q))
            v = verify_sampling(lambda _i: p_logits, [proposed], [q], settings, rng)
            if v.accepted == 0:
                counts[v.next_token] += 1
            else:
                counts[proposed] += 1
        assert np.allclose(counts / n, p, atol=0.01), (q, counts / n)


@pytest.mark.real
def test_padded_pair_is_compatible(real_models, padded_target):
    a = LlamaModel.open(ModelSettings(path=real_models["smollm2"]), vocab_only=True)
    b = LlamaModel.open(ModelSettings(path=padded_target), vocab_only=True)
    try:
        assert b.n_vocab == a.n_vocab + PAD
        assert vocab_mismatch(b, a) is None
        assert vocab_mismatch(a, b) is None
    finally:
        a.close()
        b.close()


@pytest.mark.real
def test_sampling_with_a_larger_target_vocabulary(padded_target, derived_models):
    spec = _engine(padded_target, derived_models["smollm2-q4_0"])
    try:
        assert spec.target.n_vocab > spec.draft_model.n_vocab
        assert_second_token_distribution(spec, padded_target, n=200)
    finally:
        spec.close()


@pytest.mark.real
def test_sampling_with_a_larger_draft_vocabulary(real_models, derived_models, tmp_path):
    """The draft's extra ids copy the rows of the likeliest tokens, so it proposes ids the
    target does not have about as often as those tokens: each must be rejected."""
    target, base = real_models["smollm2"], derived_models["smollm2-q4_0"]
    plain = _engine(target, base)
    prompt = plain.tokenize_chat(MESSAGES)
    plain.close()
    draft = pad_vocabulary(base, tmp_path / "draft-padded.gguf", _likely_tokens(base, prompt))
    spec = _engine(target, draft)
    verified: list[int] = []
    verify = spec._verify

    def recording_verify(reply, drafted):  # type: ignore[no-untyped-def]
        accepted = verify(reply, drafted)
        verified.extend(drafted.tokens)
        return accepted

    spec._verify = recording_verify  # type: ignore[method-assign]
    try:
        assert spec.draft_model.n_vocab > spec.target.n_vocab
        assert_second_token_distribution(spec, target, n=200)
        foreign = [t for t in verified if t >= spec.target.n_vocab]
        assert foreign, "the draft never proposed an id the target lacks: nothing was tested"
    finally:
        spec.close()


@pytest.mark.real
def test_greedy_with_unequal_vocabularies_equals_target_alone(padded_target, derived_models,
                                                              real_models):
    g = GenerationSettings(max_tokens=40)
    alone = SpeculativeEngine.load(
        ModelSettings(path=padded_target, n_ctx=1024), None, SpecSettings(mode=DraftMode.NONE)
    )
    spec = _engine(padded_target, derived_models["smollm2-q4_0"])
    try:
        want = run(alone.chat(MESSAGES, g))[0].token_ids
        done = run(spec.chat(MESSAGES, g))[0]
        assert done.token_ids == want
        assert done.stats.drafted > 0
    finally:
        alone.close()
        spec.close()
    assert GEN.top_k > 0  # the distribution tests sample with top-k (padding ids never win)
