"""Verification: decide how much of a draft the target keeps, and the target's own next token.

The target has evaluated [last, d1..dk] in one pass; row i of its logits predicts the token after
position i. Greedy keeps the longest prefix where the target's argmax equals the draft. Sampling
uses speculative sampling (Leviathan et al. 2023; Chen et al. 2023), which keeps the target's
distribution exactly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from specchat.engine.speculative.sampling import distribution, greedy, sample
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
    pick: Callable[[int], int] | None = None,
) -> Verdict:
    """q: the draft's distributions for each proposed token, or None for a deterministic draft
    (prompt lookup, cross-vocabulary text): then sample from p and keep while it matches.
    `pick(i)`: the target's own draw from row i's distribution, where another way than
    sampling `distribution(rows(i))` is cheaper (a grammar's: constraint.py); it serves the
    sample-and-match rows and the bonus token, which need a draw, not p itself.

    The two vocabularies may differ in size (padding tokens): p covers the target's ids, q the
    draft's. Tokens the draft cannot produce have q = 0; a token only the draft has has p = 0
    and is always rejected."""
    own = pick or (lambda i: sample(distribution(rows(i), settings), rng))
    for i, proposed in enumerate(draft):
        if q is None:
            choice = own(i)
            if choice != proposed:
                return Verdict(i, choice)
            continue
        p = distribution(rows(i), settings)
        px = float(p[proposed]) if proposed < len(p) else 0.0
        qi = q[i]
        qx = float(qi[proposed]) if proposed < len(qi) else 0.0
        if qx > 0 and rng.random() * qx <= px:  # accept with probability min(1, p/q)
            continue
        residual = np.maximum(p - on_target_ids(qi, len(p)), 0.0)
        total = residual.sum()
        return Verdict(i, sample(residual / total if total > 0 else p, rng))
    return Verdict(len(draft), own(len(draft)))


def on_target_ids(q: np.ndarray, n_target: int) -> np.ndarray:
    """The draft's distribution over the target's token ids: zero for ids the draft lacks;
    mass on ids the target lacks is left out (those tokens are always rejected)."""
    if len(q) == n_target:
        return q
    if len(q) > n_target:
        return q[:n_target]
    return np.concatenate([q, np.zeros(n_target - len(q), dtype=q.dtype)])


def known_prefix(draft: Sequence[int], n_target: int) -> int:
    """How many leading draft tokens the target can evaluate: a token outside its vocabulary
    (a draft with more ids) ends the draft; it is kept for verification, which rejects it."""
    for i, token in enumerate(draft):
        if token >= n_target:
            return i
    return len(draft)
