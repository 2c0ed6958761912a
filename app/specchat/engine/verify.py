"""Verification: decide how much of a draft the target keeps, and the target's own next token.

The target has evaluated [last, d1..dk] in one pass; row i of its logits predicts the token after
position i. Greedy keeps the longest prefix where the target's argmax equals the draft. Sampling
uses speculative sampling (Leviathan et al. 2023; Chen et al. 2023), which keeps the target's
distribution exactly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from specchat.engine.sampling import distribution, greedy, sample
from specchat.engine.types import GenerationSettings


@dataclass(frozen=True)
class Verdict:
    accepted: int  # how many draft tokens were kept
    next_token: int  # the target's own token after them (correction or bonus)


Rows = Callable[[int], np.ndarray]  # row index -> target logits (a view, valid until next decode)


def verify_greedy(rows: Rows, draft: Sequence[int]) -> Verdict:
    for i, proposed in enumerate(draft):
        choice = greedy(rows(i))
        if choice != proposed:
            return Verdict(i, choice)
    return Verdict(len(draft), greedy(rows(len(draft))))


def verify_sampling(
    rows: Rows,
    draft: Sequence[int],
    q: Sequence[np.ndarray] | None,
    settings: GenerationSettings,
    rng: np.random.Generator,
) -> Verdict:
    """q: the draft's distributions for each proposed token, or None for a deterministic draft
    (prompt lookup, cross-vocabulary text): then sample from p and keep while it matches."""
    for i, proposed in enumerate(draft):
        p = distribution(rows(i), settings)
        if q is None:
            choice = sample(p, rng)
            if choice != proposed:
                return Verdict(i, choice)
            continue
        qi = q[i]
        px, qx = p[proposed], qi[proposed]
        if qx > 0 and rng.random() * qx <= px:  # accept with probability min(1, p/q)
            continue
        residual = np.maximum(p - qi, 0.0)
        total = residual.sum()
        return Verdict(i, sample(residual / total if total > 0 else p, rng))
    return Verdict(len(draft), sample(distribution(rows(len(draft)), settings), rng))
