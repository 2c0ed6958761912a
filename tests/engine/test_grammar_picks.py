"""The grammar's shortcuts (engine/constraint.py) give exactly the masked distribution: top-k
over the likeliest candidates only, and llama.cpp's sample-first pick (a draw from the unmasked
distribution, kept when the grammar allows it, else a draw from the masked one). On the tiny
model's vocabulary: no model runs, only its tokens under a grammar."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from specchat.engine.llama.model import LlamaModel
from specchat.engine.speculative.constraint import Constraint
from specchat.engine.speculative.sampling import distribution
from specchat.engine.types import GenerationSettings, ModelSettings

from .distribution import chi2_critical

GRAMMAR = 'root ::= [a-z]+ " " [a-z]+'  # lowercase letters first: most tokens are refused


@pytest.fixture(scope="module")
def vocab(tiny_target: Path):
    model = LlamaModel.open(ModelSettings(path=tiny_target, n_ctx=64, n_threads=1))
    yield model
    model.close()


def _logits(model: LlamaModel, seed: int, scale: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(model.n_vocab) * scale).astype(np.float32)


def _whole(c: Constraint, logits: np.ndarray, settings: GenerationSettings) -> np.ndarray:
    """The masked distribution as the whole mask gives it (the definition)."""
    return distribution(c.constrain(logits, greedy=False), settings)


@pytest.mark.parametrize("top_k", [1, 3, 8, 40])
def test_top_k_over_the_likeliest_candidates_is_the_whole_mask_bit_for_bit(vocab, top_k):
    c = Constraint(vocab.vocab, vocab.n_vocab, GRAMMAR)
    try:
        settings = GenerationSettings(temperature=0.8, top_k=top_k)
        shortcut = 0
        for seed in range(40):
            logits = _logits(vocab, seed)
            if seed % 2:  # the likeliest tokens refused: the candidates may not hold k allowed
                logits[np.argsort(logits)[-100:]] += 20
            shortcut += c._top_k_masked(c._sampler, logits, top_k) is not None
            got = distribution(c._constrain(c._sampler, logits, settings), settings)
            assert np.array_equal(got, _whole(c, logits, settings)), seed
        assert shortcut > 0  # the candidates' mask was used (and agreed)
    finally:
        c.close()


@pytest.mark.parametrize(
    "settings",
    [
        GenerationSettings(temperature=1.0),  # sample first, mask only on a refusal
        GenerationSettings(temperature=0.7, top_k=5),  # the candidates' mask
        GenerationSettings(temperature=1.0, top_k=40),  # too few allowed candidates: sample first
        GenerationSettings(temperature=1.0, top_p=0.9),  # the whole mask
    ],
)
def test_the_target_s_pick_draws_the_masked_distribution(vocab, settings):
    c = Constraint(vocab.vocab, vocab.n_vocab, GRAMMAR)
    try:
        logits = _logits(vocab, 7, scale=2.0)
        expected = _whole(c, logits, settings)
        unmasked = distribution(logits, settings)
        assert 0.05 < unmasked[expected > 0].sum() < 0.9  # refusals happen, and matter
        rng = np.random.default_rng(0)
        n = 6000
        counts = Counter(c.pick(logits, settings, rng) for _ in range(n))
        bins, pooled_e, pooled_o = [], 0.0, 0
        for token in np.argsort(-expected):
            e = float(expected[token]) * n
            if e == 0:
                break
            if e >= 5:
                bins.append((e, counts.pop(int(token), 0)))
            else:
                pooled_e += e
                pooled_o += counts.pop(int(token), 0)
        assert not counts, f"drew tokens the grammar refuses: {counts}"
        if pooled_e:
            bins.append((pooled_e, pooled_o))
        chi2 = sum((o - e) ** 2 / e for e, o in bins)
        assert len(bins) >= 3
        assert chi2 < chi2_critical(len(bins) - 1), (chi2, bins)
    finally:
        c.close()
