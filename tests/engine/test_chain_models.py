"""The drafter chain on real models: greedy output identical to the target alone on a code edit
where the suffix drafter actually drafts and is accepted; what was learned persists."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from specchat.bench.prompts import builtin_set
from specchat.engine.speculative.learned import LearnedStore
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    Origin,
    SpecSettings,
    TokenEvent,
)

from .conftest import run

pytestmark = pytest.mark.real

GEN = GenerationSettings(max_tokens=72)
N_CTX = 1024


def _edit() -> list[Message]:
    return list(builtin_set("edit")[0].messages)  # rename a function, reply with the whole file


def _load(target: Path, draft: Path | None, **spec: object) -> SpeculativeEngine:
    def ms(p: Path) -> ModelSettings:
        return ModelSettings(path=p, n_ctx=N_CTX, n_threads=2)

    return SpeculativeEngine.load(ms(target), ms(draft) if draft else None, SpecSettings(**spec))


@pytest.fixture(scope="module")
def qwen_alone(real_models: dict[str, Path]) -> tuple[int, ...]:
    engine = _load(real_models["qwen"], None, mode=DraftMode.NONE)
    try:
        done, _ = run(engine.chat(_edit(), GEN))
    finally:
        engine.close()
    return done.token_ids


def _check_chain(engine: SpeculativeEngine, want: tuple[int, ...]) -> None:
    done, events = run(engine.chat(_edit(), GEN))
    s = done.stats
    assert done.token_ids == want  # greedy: token for token the target's own reply
    assert s.suffix_drafted > 0 and s.suffix_accepted > 0, s
    assert s.drafted == s.model_drafted + s.suffix_drafted
    assert s.accepted == s.model_accepted + s.suffix_accepted
    kinds = {e.drafter for e in events if isinstance(e, TokenEvent) and e.origin is Origin.DRAFT}
    assert "suffix" in kinds and kinds <= {"suffix", "model"}


def test_lookup_chain_is_exact_and_copies(real_models, qwen_alone):
    engine = _load(real_models["qwen"], None, mode=DraftMode.LOOKUP)
    try:
        _check_chain(engine, qwen_alone)
    finally:
        engine.close()


def test_model_chain_is_exact_and_copies(real_models, derived_models, qwen_alone):
    engine = _load(real_models["qwen"], derived_models["qwen-q2_k"], mode=DraftMode.MODEL)
    try:
        _check_chain(engine, qwen_alone)
    finally:
        engine.close()


def test_cross_vocab_chain_is_exact_and_copies(real_models, qwen_alone):
    engine = _load(real_models["qwen"], real_models["smollm2"], mode=DraftMode.MODEL,
                   cross_vocab=True)
    try:
        _check_chain(engine, qwen_alone)
    finally:
        engine.close()


def test_learned_costs_persist_across_loads(real_models, tmp_path):
    path = tmp_path / "learned.json"
    engine = _load(real_models["qwen"], None, mode=DraftMode.LOOKUP, learned_path=path)
    try:
        run(engine.chat(_edit(), GenerationSettings(max_tokens=24)))
        assert engine.chain is not None
        learned = engine.chain.snapshot()
    finally:
        engine.close()
    assert path.is_file()
    again = _load(real_models["qwen"], None, mode=DraftMode.LOOKUP, learned_path=path)
    try:
        assert again.chain is not None
        assert again.chain.snapshot()["suffix"] == learned["suffix"]
        assert again.costs.ratio.keys() == engine.costs.ratio.keys()
        assert all(s.stale for s in again.costs.ratio.values())  # this run replaces them
    finally:
        again.close()
    other = _load(real_models["qwen"], None, mode=DraftMode.LOOKUP, learned_path=path,
                  draft_max=4)  # the key does not depend on settings: same pair, same machine
    try:
        assert other.costs.ratio.keys() == engine.costs.ratio.keys()
    finally:
        other.close()


def test_a_poisoned_learned_file_recovers_within_one_reply(real_models, qwen_alone, tmp_path):
    """learned.json written during a busy minute (every batched pass 10x a token and worse, the
    suffix drafter's trust at its floor of nothing learned): the next run still drafts the
    copied text in its first reply, and replaces the stale costs with its own."""
    path = tmp_path / "learned.json"
    engine = _load(real_models["qwen"], None, mode=DraftMode.LOOKUP, learned_path=path)
    try:
        assert engine.chain is not None
        key = engine._learned_key(engine.spec)
        poisoned = engine.chain.snapshot()
    finally:
        engine.close()
    poisoned["costs"] = {  # type: ignore[index]
        "saved": time.time(), "one": [3.5], "ratio": {str(n): [float(n)] * 9 for n in range(2, 34)},
        "draft": [], "catchup": [], "overhead": [2.0],
    }
    LearnedStore(path).save(key, poisoned)
    again = _load(real_models["qwen"], None, mode=DraftMode.LOOKUP, learned_path=path)
    try:
        done, _ = run(again.chat(_edit(), GEN))
        assert done.token_ids == qwen_alone
        assert done.stats.suffix_drafted > 0 and done.stats.suffix_accepted > 0, done.stats
        assert again.costs.one.fresh and any(s.fresh for s in again.costs.ratio.values())
    finally:
        again.close()


@pytest.mark.slow
def test_sampling_with_suffix_drafts_keeps_the_target_distribution(real_models):
    """Sample-and-match on deterministic suffix proposals: the 2nd token's distribution (the
    first that goes through verification) equals the target's own, exactly computed."""
    from .distribution import GEN as SAMPLING
    from .distribution import chi2_critical, exact_second_token

    target = real_models["smollm2"]
    line = "The quick brown fox jumps over the lazy dog."
    messages = [Message("user", f"Repeat: {line}"), Message("assistant", line),
                Message("user", "Again, exactly.")]
    engine = SpeculativeEngine.load(ModelSettings(path=target, n_ctx=N_CTX), None,
                                    SpecSettings(mode=DraftMode.LOOKUP, adaptive=False))
    try:
        expected = exact_second_token(target, engine.tokenize_chat(messages))
        n, counts, drafted = 240, {}, 0
        for seed in range(n):
            settings = GenerationSettings(**{**SAMPLING.__dict__, "seed": seed})
            # the whole prompt in one pass, as exact_second_token evaluates it (a cached prompt's
            # last token, evaluated alone, can move a near-tie at the top-k boundary)
            engine.reset_cache()
            done, _ = run(engine.chat(messages, settings))
            drafted += done.stats.suffix_drafted
            second = done.token_ids[1]
            counts[second] = counts.get(second, 0) + 1
    finally:
        engine.close()
    assert drafted > n, "the suffix drafter rarely proposed: nothing was tested"
    bins, pooled_e, pooled_o = [], 0.0, 0
    for tok, prob in sorted(expected.items(), key=lambda kv: -kv[1]):
        if prob * n >= 5:
            bins.append((prob * n, counts.pop(tok, 0)))
        else:
            pooled_e, pooled_o = pooled_e + prob * n, pooled_o + counts.pop(tok, 0)
    assert not counts, f"sampled tokens the target cannot produce: {counts}"
    if pooled_e > 0:
        bins.append((pooled_e, pooled_o))
    chi2 = sum((o - e) ** 2 / e for e, o in bins)
    assert len(bins) >= 2
    assert chi2 < chi2_critical(len(bins) - 1), (chi2, bins)
