"""The generation loop on tiny generated models: exactness, rollback, stats, cache, cancel."""

from __future__ import annotations

import threading

import pytest

from specchat.engine.types import (
    STATS_NAMES,
    DoneEvent,
    DraftMode,
    GenerationSettings,
    Message,
    NoticeEvent,
    Origin,
    ProgressEvent,
    TokenEvent,
)

from .conftest import RecordingDrafter, chat, load, pretend_drafting_is_cheap, run

PROMPTS = ["the cat is in the sea", "we and you", "a b c d e f g"]


@pytest.mark.parametrize("draft_max", [1, 3, 6])
@pytest.mark.parametrize("adaptive", [False, True])
def test_greedy_speculative_equals_target_alone(tiny_target, tiny_draft, draft_max, adaptive):
    alone = load(tiny_target)
    spec = load(tiny_target, tiny_draft, draft_max=draft_max, adaptive=adaptive, p_min=0.0)
    if adaptive:
        # The tiny draft costs as much as its target, so the costs measured at load time would
        # switch speculation off; pretend drafting is cheap so the adaptive path drafts.
        pretend_drafting_is_cheap(spec)
    try:
        drafted = 0
        for prompt in PROMPTS:
            want = chat(alone, prompt)
            got = chat(spec, prompt)
            assert got.token_ids == want.token_ids
            assert got.text == want.text
            drafted += got.stats.drafted
        assert drafted > 0
    finally:
        alone.close()
        spec.close()


def test_rejections_happen_and_are_rolled_back(tiny_target, tiny_draft):
    """The draft disagrees sometimes: the loop must have rolled back, and stayed exact."""
    spec = load(tiny_target, tiny_draft, draft_max=4, adaptive=False, p_min=0.0)
    alone = load(tiny_target)
    done = chat(spec, PROMPTS[0], max_tokens=120)
    assert 0 < done.stats.accepted < done.stats.drafted
    assert done.token_ids == chat(alone, PROMPTS[0], max_tokens=120).token_ids
    # the cache holds exactly the emitted sequence except its last token
    prompt = spec.tokenize_chat([Message("user", PROMPTS[0])])
    assert spec.target.tokens == [*prompt, *done.token_ids][:-1]
    spec.close()
    alone.close()


def test_acceptance_counted_independently(tiny_target, tiny_draft):
    """Recount accepted draft tokens from the proposals and the target-alone output."""
    alone = load(tiny_target)
    want = chat(alone, PROMPTS[1], max_tokens=80).token_ids
    spec = load(tiny_target, tiny_draft, draft_max=5, adaptive=False, p_min=0.0, suffix=False)
    prompt = spec.tokenize_chat([Message("user", PROMPTS[1])])
    chain = spec.chain
    assert chain is not None and chain.model is not None
    chain.model.proposer = recorder = RecordingDrafter(chain.model.proposer, len(prompt))
    done, events = run(spec.chat([Message("user", PROMPTS[1])], GenerationSettings(max_tokens=80)))
    assert done.token_ids == want
    accepted = drafted = 0
    for start, tokens in recorder.proposals:
        drafted += len(tokens)
        for i, t in enumerate(tokens):
            if start + i >= len(want) or want[start + i] != t:
                break
            accepted += 1
    assert (done.stats.drafted, done.stats.accepted) == (drafted, accepted)
    assert done.stats.acceptance_rate == pytest.approx(accepted / drafted)
    origins = [e.origin for e in events if isinstance(e, TokenEvent) and e.token_id >= 0]
    assert origins.count(Origin.DRAFT) == accepted
    assert done.stats.target_passes == origins.count(Origin.TARGET)
    assert done.stats.tokens_per_pass == pytest.approx(len(want) / done.stats.target_passes)
    spec.close()
    alone.close()


def test_stats_names_and_progress(tiny_target, tiny_draft):
    spec = load(tiny_target, tiny_draft, draft_max=3, adaptive=False)
    done, events = run(spec.chat([Message("user", "the")], GenerationSettings(max_tokens=20)))
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    assert progress and progress[-1].stats.generated_tokens <= done.stats.generated_tokens
    d = done.stats.to_dict()
    for key in STATS_NAMES:
        assert key in d
    assert done.stats.generated_tokens == len(done.token_ids) == 20
    assert done.stats.finish_reason == "length"
    assert done.stats.draft_max == 3
    assert done.stats.tokens_per_second > 0 and done.stats.ttft_ms > 0
    spec.close()


def test_p_min_stops_drafting_early(tiny_target, tiny_draft):
    eager = load(tiny_target, tiny_draft, draft_max=6, adaptive=False, p_min=0.0)
    careful = load(tiny_target, tiny_draft, draft_max=6, adaptive=False, p_min=0.999)
    a = chat(eager, PROMPTS[0])
    b = chat(careful, PROMPTS[0])
    assert a.token_ids == b.token_ids
    assert b.stats.drafted < a.stats.drafted
    eager.close()
    careful.close()


def test_lookup_drafting_is_exact(tiny_target):
    alone = load(tiny_target)
    lookup = load(tiny_target, mode=DraftMode.LOOKUP, draft_max=4, adaptive=False)
    text = "a b c d e f g a b c d e f g a b c"
    want = chat(alone, text, max_tokens=80)
    got = chat(lookup, text, max_tokens=80)
    assert got.token_ids == want.token_ids
    assert got.stats.drafted > 0
    alone.close()
    lookup.close()


def test_multi_turn_reuses_cache_and_stays_exact(tiny_target, tiny_draft):
    spec = load(tiny_target, tiny_draft, draft_max=4, adaptive=False)
    first = chat(spec, "the cat")
    history = [Message("user", "the cat"), Message("assistant", first.text), Message("user", "and")]
    g = GenerationSettings(max_tokens=40)
    second, _ = run(spec.chat(history, g))
    assert second.stats.cached_prompt_tokens > first.stats.prompt_tokens // 2
    fresh = load(tiny_target)
    want, _ = run(fresh.chat(history, g))
    assert second.token_ids == want.token_ids
    assert want.stats.cached_prompt_tokens == 0
    spec.close()
    fresh.close()


def test_cancel_keeps_caches_consistent(tiny_target, tiny_draft):
    spec = load(tiny_target, tiny_draft, draft_max=4, adaptive=False)
    cancel = threading.Event()
    events = []
    for event in spec.chat(
        [Message("user", "the sea")], GenerationSettings(max_tokens=200), cancel
    ):
        events.append(event)
        if isinstance(event, TokenEvent) and len(events) > 10:
            cancel.set()
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.stats.finish_reason == "cancelled"
    assert 0 < done.stats.generated_tokens < 200
    # the next request on the same engine gives what a fresh engine gives
    after = chat(spec, PROMPTS[2])
    fresh = load(tiny_target)
    assert after.token_ids == chat(fresh, PROMPTS[2]).token_ids
    spec.close()
    fresh.close()


def test_stop_strings_end_the_reply(tiny_target):
    alone = load(tiny_target)
    full = chat(alone, PROMPTS[0], max_tokens=60)
    stop = full.text[10:13]
    cut = chat(alone, PROMPTS[0], max_tokens=60, stop=(stop,))
    assert cut.stats.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    alone.close()


def test_sampling_is_reproducible_with_seed(tiny_target, tiny_draft):
    spec = load(tiny_target, tiny_draft, draft_max=4, adaptive=False)
    a = chat(spec, "the", temperature=0.8, seed=11)
    b = chat(spec, "the", temperature=0.8, seed=11)
    c = chat(spec, "the", temperature=0.8, seed=12)
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids
    spec.close()


def test_adaptive_never_runs_a_draft_that_cannot_pay(tiny_target, tiny_heavy_draft):
    """A draft dearer than its target is judged from the costs measured at load time: it never
    reads the prompt, never drafts, and the reply says why speculation is off."""
    spec = load(tiny_target, tiny_heavy_draft, draft_max=4)
    try:
        assert spec.chain is not None and spec.chain.controller is not None
        assert spec.chain.controller.hopeless(4)
        gen = GenerationSettings(max_tokens=30)
        done, events = run(spec.chat([Message("user", PROMPTS[0])], gen))
        assert done.stats.model_drafted == 0 and done.stats.generated_tokens > 0
        assert spec.draft_model is not None and spec.draft_model.tokens == []
        notices = [e.message for e in events if isinstance(e, NoticeEvent)]
        assert any("speculation is off" in n and "not even a perfect draft" in n for n in notices)
        _, again = run(spec.chat([Message("user", PROMPTS[1])], gen))
        assert not any(isinstance(e, NoticeEvent) for e in again)  # said once, not every reply
    finally:
        spec.close()


def test_draft_reads_the_prompt_with_the_target(tiny_target, tiny_draft):
    """The draft's prompt evaluation belongs to prompt processing (time to first token), not to
    the first round of decoding."""
    spec = load(tiny_target, tiny_draft, draft_max=4, adaptive=False)
    try:
        msgs = [Message("user", PROMPTS[1])]
        done, _ = run(spec.chat(msgs, GenerationSettings(max_tokens=1)))
        assert done.stats.target_passes == 1  # no decoding round ran
        assert spec.draft_model is not None
        assert spec.draft_model.tokens == spec.tokenize_chat(msgs)
    finally:
        spec.close()
