"""Token distributions: the same temperature/top-k/top-p/min-p transforms for target and draft.

Speculative sampling is exact only when p (target) and q (draft) go through identical transforms,
so both paths call `distribution` and `sample` from here."""

from __future__ import annotations

import numpy as np

from specchat.engine.types import GenerationSettings

TOP_P_CANDIDATES = 4096  # top-p sorts only this many first; falls back to a full sort if needed


def greedy(logits: np.ndarray) -> int:
    return int(np.argmax(logits))


def top_probability(logits: np.ndarray) -> float:
    """Softmax probability of the most likely token (temperature 1), for the draft's p_min stop."""
    shifted = logits - logits.max()
    return float(1.0 / np.exp(shifted, dtype=np.float32).sum())


def distribution(logits: np.ndarray, s: GenerationSettings) -> np.ndarray:
    """Full-vocabulary probabilities after temperature, top-k, top-p and min-p (in that order)."""
    x = logits.astype(np.float64) / max(s.temperature, 1e-6)
    n = x.shape[0]
    if 0 < s.top_k < n:
        kth = np.partition(x, n - s.top_k)[n - s.top_k]
        x[x < kth] = -np.inf
    x -= x.max()
    p = np.exp(x)
    p /= p.sum()
    if s.top_p < 1.0:
        p = _top_p(p, s.top_p)
    if s.min_p > 0.0:
        p[p < s.min_p * p.max()] = 0.0
        p /= p.sum()
    return p


def _top_p(p: np.ndarray, top_p: float) -> np.ndarray:
    n = p.shape[0]
    m = min(n, TOP_P_CANDIDATES)
    cand = np.argpartition(-p, m - 1)[:m] if m < n else np.arange(n)
    order = cand[np.argsort(-p[cand], kind="stable")]
    cum = np.cumsum(p[order])
    if cum[-1] < top_p and m < n:  # the nucleus is wider than the candidates: sort everything
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
    keep = order[: int(np.searchsorted(cum, top_p)) + 1]
    out = np.zeros_like(p)
    out[keep] = p[keep]
    out /= out.sum()
    return out


def sample(p: np.ndarray, rng: np.random.Generator) -> int:
    """Draw one token from a probability vector (inverse CDF: one uniform draw per token)."""
    cum = np.cumsum(p)
    idx = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    return min(idx, p.shape[0] - 1)
