"""Statistical check that an engine samples the target's own distribution."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from specchat.engine.llama.model import LlamaModel
from specchat.engine.speculative.constraint import Constraint
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.speculative.sampling import distribution
from specchat.engine.types import GenerationSettings, Message, ModelSettings

from .conftest import run

GEN = GenerationSettings(temperature=1.0, top_k=6, max_tokens=4)
MESSAGES = [Message("user", "Tell me a story about a dragon.")]


def chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper 0.999 quantile of chi-square (Wilson-Hilferty approximation)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def exact_second_token(
    target: Path, prompt: list[int], gen: GenerationSettings = GEN
) -> dict[int, float]:
    """P(2nd token) = sum over t1 of p(t1) p(t2 | t1), from the target alone; under gen's
    grammar, each p is the target's distribution after the grammar's mask."""
    model = LlamaModel.open(ModelSettings(path=target, n_ctx=1024))
    try:
        model.decode(prompt, logits="last")
        p1 = distribution(_masked(model, model.logits(-1).copy(), gen, ()), gen)
        expected: dict[int, float] = {}
        for t1 in np.flatnonzero(p1):
            model.truncate(len(prompt))
            model.decode([int(t1)], logits="last")
            p2 = distribution(_masked(model, model.logits(-1).copy(), gen, (int(t1),)), gen)
            for t2 in np.flatnonzero(p2):
                expected[int(t2)] = expected.get(int(t2), 0.0) + p1[t1] * p2[t2]
        return expected
    finally:
        model.close()


def _masked(
    model: LlamaModel, logits: np.ndarray, gen: GenerationSettings, accepted: tuple[int, ...]
) -> np.ndarray:
    """The logits under gen's grammar after `accepted` (unchanged without a grammar)."""
    if gen.grammar is None:
        return logits
    grammar = Constraint(model.vocab, model.n_vocab, gen.grammar)
    try:
        for token in accepted:
            grammar.accept(token)
        return grammar.constrain(logits, greedy=False)
    finally:
        grammar.close()


def assert_second_token_distribution(
    spec: SpeculativeEngine,
    target: Path,
    n: int,
    gen: GenerationSettings = GEN,
    messages: list[Message] = MESSAGES,
) -> None:
    expected = exact_second_token(target, spec.tokenize_chat(messages), gen)
    counts: dict[int, int] = {}
    drafted = 0
    for seed in range(n):
        settings = GenerationSettings(**{**gen.__dict__, "seed": seed})
        done, _ = run(spec.chat(messages, settings))
        assert len(done.token_ids) >= 2
        drafted += done.stats.drafted
        counts[done.token_ids[1]] = counts.get(done.token_ids[1], 0) + 1
    assert drafted > 0, "the draft never proposed anything: nothing was tested"
    # chi-square goodness of fit, pooling rare outcomes so every bin expects >= 5
    bins, pooled_e, pooled_o = [], 0.0, 0
    for tok, prob in sorted(expected.items(), key=lambda kv: -kv[1]):
        if prob * n >= 5:
            bins.append((prob * n, counts.pop(tok, 0)))
        else:
            pooled_e += prob * n
            pooled_o += counts.pop(tok, 0)
    assert not counts, f"sampled tokens the target (or the grammar) cannot produce: {counts}"
    if pooled_e > 0:
        bins.append((pooled_e, pooled_o))
    chi2 = sum((o - e) ** 2 / e for e, o in bins)
    assert len(bins) >= 3
    assert chi2 < chi2_critical(len(bins) - 1), (chi2, bins)
