"""The engine on the real GGUF models (SmolLM2-135M, Qwen2.5-Coder-0.5B, Gemma-3-270M), each
drafted by a requantized copy of itself (same vocabulary): exactness, acceptance, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specchat.engine.limits import MAX_DRAFT
from specchat.engine.llama.model import LlamaModel
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)
from specchat.errors import VocabMismatchError

from .conftest import RecordingDrafter, pretend_drafting_is_cheap, run
from .distribution import assert_second_token_distribution

pytestmark = pytest.mark.real

PROMPTS = [
    "Write a Python function that checks whether a number is prime.",
    "Name three rivers in Europe and one fact about each.",
    "Translate to French: the cat sleeps on the warm windowsill.",
]
STORY = (
    " ran into the forest, where it met a wise old owl who knew every path between the river"
    " and the mountains. The owl told the fox about a hidden valley full of berries, and the"
    " two of them set off together before the sun went down behind the hills."
)
PAIRS = [("smollm2", "smollm2-q4_0"), ("qwen", "qwen-q2_k"), ("gemma", "gemma-q4_0")]


def engine(target: Path, draft: Path | None, **spec: object) -> SpeculativeEngine:
    mode = DraftMode.MODEL if draft else DraftMode.NONE
    # One thread and batches of at most 5: where llama.cpp's CPU kernels give batched logits
    # equal to one-token logits (README, Exactness; test_batched_logits_equal_one_token_logits).
    s = ModelSettings(path=target, n_ctx=1024, n_threads=1)
    d = ModelSettings(path=draft, n_ctx=1024, n_threads=1) if draft else None
    spec = {"suffix_max": 4, **spec}  # the suffix drafter's batches too
    return SpeculativeEngine.load(s, d, SpecSettings(mode=mode, **spec))  # type: ignore[arg-type]


def reply(e: SpeculativeEngine, prompt: str, **gen: object):
    g = GenerationSettings(**{"max_tokens": 40, **gen})  # type: ignore[arg-type]
    return run(e.chat([Message("user", prompt)], g))


def top2_gap(model_path: Path, tokens: list[int]) -> float:
    """The target's top-2 logit gap after `tokens`, one token at a time (near-tie diagnosis)."""
    m = LlamaModel.open(ModelSettings(path=model_path, n_ctx=1024))
    try:
        m.decode(tokens, logits="last")
        top = np.sort(m.logits(-1))[-2:]
        return float(top[1] - top[0])
    finally:
        m.close()


@pytest.mark.parametrize("target_name, draft_name", PAIRS)
def test_greedy_identity(real_models, derived_models, target_name, draft_name):
    target, draft = real_models[target_name], derived_models[draft_name]
    alone = engine(target, None)
    fixed = engine(target, draft, draft_max=4, adaptive=False, p_min=0.0)
    adaptive = engine(target, draft, draft_max=4, adaptive=True)
    # On a 2-core CPU the load-time costs say these drafts cannot pay, so the controller would
    # never draft: start it believing drafting is cheap, so that it explores on real models.
    # On one thread a batched pass also costs nearly as much as its tokens one by one, so make
    # verification look cheap too (real measurements replace these as the replies run).
    pretend_drafting_is_cheap(adaptive, verify_too=True)
    try:
        total_drafted = 0
        adaptive_drafted = 0
        for prompt in PROMPTS:
            want, _ = reply(alone, prompt)
            for spec in (fixed, adaptive):
                got, _ = reply(spec, prompt)
                total_drafted += got.stats.drafted
                adaptive_drafted += got.stats.drafted if spec is adaptive else 0
                if got.token_ids != want.token_ids:
                    pairs = zip(got.token_ids, want.token_ids, strict=False)
                    at = next((i for i, (a, b) in enumerate(pairs) if a != b), len(want.token_ids))
                    ctx = alone.tokenize_chat([Message("user", prompt)]) + list(want.token_ids[:at])
                    pytest.fail(
                        f"{target_name}: diverged at token {at} (top-2 logit gap there: "
                        f"{top2_gap(target, ctx):.4f})"
                    )
        assert total_drafted > 0 and adaptive_drafted > 0
    finally:
        for e in (alone, fixed, adaptive):
            e.close()


def test_self_draft_accepts_everything(real_models):
    """The target drafting for itself must agree on every token: batched verification gives
    the same logits as one-token decoding (this fails with CPU weight repacking on Q4_K)."""
    qwen = real_models["qwen"]
    e = engine(qwen, qwen, draft_max=4, adaptive=False, p_min=0.0)
    try:
        done, _ = reply(e, PROMPTS[0], max_tokens=48)
        assert done.stats.drafted > 0
        assert done.stats.accepted == done.stats.drafted
    finally:
        e.close()


def test_acceptance_counted_independently(real_models, derived_models):
    target, draft = real_models["smollm2"], derived_models["smollm2-q4_0"]
    alone = engine(target, None)
    want, _ = reply(alone, PROMPTS[1], max_tokens=60)
    alone.close()
    spec = engine(target, draft, draft_max=5, adaptive=False, p_min=0.0, suffix=False)
    prompt = spec.tokenize_chat([Message("user", PROMPTS[1])])
    chain = spec.chain
    assert chain is not None and chain.model is not None
    chain.model.proposer = recorder = RecordingDrafter(chain.model.proposer, len(prompt))
    got, _ = reply(spec, PROMPTS[1], max_tokens=60)
    spec.close()
    assert got.token_ids == want.token_ids
    accepted = drafted = 0
    for start, tokens in recorder.proposals:
        drafted += len(tokens)
        for i, t in enumerate(tokens):
            if start + i >= len(want.token_ids) or want.token_ids[start + i] != t:
                break
            accepted += 1
    assert (got.stats.drafted, got.stats.accepted) == (drafted, accepted)
    assert got.stats.acceptance_rate == pytest.approx(accepted / drafted)


def test_vocab_mismatch_is_a_clear_error(real_models):
    with pytest.raises(VocabMismatchError) as err:
        engine(real_models["qwen"], real_models["smollm2"])
    message = str(err.value)
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in message
    assert "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" in message
    assert "\n" not in message


def test_sampling_keeps_the_target_distribution(real_models, derived_models):
    """Speculative sampling (draft distributions q, Leviathan/Chen acceptance) vs the exact
    distribution of the 2nd generated token, the first one that goes through verification."""
    target, draft = real_models["smollm2"], derived_models["smollm2-q4_0"]
    spec = engine(target, draft, draft_max=3, adaptive=False, p_min=0.0)
    try:
        assert_second_token_distribution(spec, target, n=400)
    finally:
        spec.close()


def _batched_vs_one_token(path: Path, batch: int = 9, threads: int = 0) -> list[tuple[float, bool]]:
    """(max |logit difference|, same argmax) per row of a `batch`-token pass vs one by one."""
    settings = ModelSettings(path=path, n_ctx=512, n_threads=threads)
    one, batched = LlamaModel.open(settings), LlamaModel.open(settings)
    try:
        prompt = one.tokenize("The quick brown fox jumps over the lazy dog. Then it")
        continuation = one.tokenize(STORY, False)[:batch]
        assert len(continuation) == batch
        for m in (one, batched):
            m.decode(prompt, logits="last")
        batched.decode(continuation, logits="all")
        rows = []
        for i, token in enumerate(continuation):
            one.decode([token], logits="last")
            a, b = one.logits(-1), batched.logits(i)
            rows.append((float(np.abs(a - b).max()), int(np.argmax(a)) == int(np.argmax(b))))
        return rows
    finally:
        one.close()
        batched.close()


@pytest.mark.parametrize(
    "name, batch",
    # What the README's Exactness section promises bit for bit on one thread: Q4_1 at any
    # draft length (a batch of MAX_DRAFT + 1), K-quants at --draft-max 4 (a batch of 5).
    [("smollm2", MAX_DRAFT + 1), ("qwen", 5), ("gemma", 5)],
)
def test_batched_logits_equal_one_token_logits(real_models, name, batch):
    """The premise of exact greedy verification: a verification batch gives the same logits,
    bit for bit, as evaluating its tokens one by one (one thread; flash attention on, which
    llama.cpp's default picks on CPU)."""
    rows = _batched_vs_one_token(real_models[name], batch=batch, threads=1)
    assert [diff for diff, _ in rows] == [0.0] * batch


def test_qwen_batched_logits_differ_slightly(real_models):
    """Known llama.cpp behaviour, kept visible: on this CPU build Qwen2.5's Q4_K_M (Q5_0/Q8_0
    tensors) goes through other matmul kernels in a batch, so logits differ by up to ~0.4 while
    the argmax agrees. Greedy identity can then only break at a near-tie (README)."""
    rows = _batched_vs_one_token(real_models["qwen"])
    assert all(same for _, same in rows)
    assert max(diff for diff, _ in rows) < 1.0
