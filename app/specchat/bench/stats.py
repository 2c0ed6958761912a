"""Benchmark arithmetic: predicted speedup, acceptance estimates, pair-by-pair ratios, spreads."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """Median and range of a sample (n small: min and max say more than a deviation)."""

    median: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


def spread(values: Sequence[float]) -> Spread | None:
    vals = [float(v) for v in values]
    if not vals:
        return None
    return Spread(statistics.median(vals), min(vals), max(vals), len(vals))


def pair_ratios(baseline: Mapping[tuple[int, str], float], mode: Mapping[tuple[int, str], float]
                ) -> list[float]:
    """Speedup pair by pair: mode / baseline for each (round, prompt) run that both have.

    Each ratio compares two runs of the same prompt in the same round (adjacent in time), so slow
    drifts of the machine cancel; the median of these ratios is the reported speedup."""
    out = []
    for key, value in mode.items():
        base = baseline.get(key)
        if base is not None and base > 0 and value > 0:
            out.append(value / base)
    return out


def expected_tokens_per_pass(alpha: float, k: int) -> float:
    """Tokens a verify pass yields with k drafted tokens each accepted (in order) with prob. alpha:
    1 + alpha + ... + alpha^k = (1 - alpha^(k+1)) / (1 - alpha)."""
    if k < 0:
        raise ValueError("k must be >= 0")
    if alpha >= 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


def predicted_speedup(alpha: float, k: int, c: float, b: Mapping[int, float]) -> float:
    """(1 − α^(k+1)) / ((1 − α)(k·c + b(k+1))): tokens per pass over the pass's cost in units of
    one target token, where c = draft cost per token / target cost per token and b(n) = target cost
    of one pass over n tokens / one token. k = 0 is the target alone (b(1) = 1)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if k == 0:
        return 1.0 / b.get(1, 1.0)
    if k + 1 not in b:
        raise KeyError(f"b({k + 1}) was not measured")
    return expected_tokens_per_pass(alpha, k) / (k * c + b[k + 1])


def best_predicted(alpha: float, c: float, b: Mapping[int, float]) -> tuple[int, float]:
    """The draft length with the highest predicted speedup (0 = speculation off)."""
    best = (0, 1.0)
    for n in sorted(b):
        k = n - 1
        if k >= 1:
            s = predicted_speedup(alpha, k, c, b)
            if s > best[1]:
                best = (k, s)
    return best


def alpha_from_passes(passes: Sequence[tuple[int, int]]) -> float | None:
    """Per-token acceptance α from (drafted, accepted) per verify pass.

    Each pass is a run of Bernoulli(α) trials that stops at the first rejection: accepted tokens
    are successes, a pass with accepted < drafted contributes one failure. The maximum-likelihood
    estimate is successes / (successes + failures)."""
    successes = sum(a for _, a in passes)
    failures = sum(1 for d, a in passes if a < d)
    if successes + failures == 0:
        return None
    return successes / (successes + failures)


def alpha_from_rate(rate: float, k: int) -> float:
    """Invert acceptance_rate = accepted / drafted = (α + α² + … + α^k) / k for fixed k (used when
    per-pass counts are not available)."""
    if k <= 0 or rate <= 0.0:
        return 0.0
    if rate >= 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (expected_tokens_per_pass(mid, k) - 1.0) / k < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def acceptance_by_position(passes: Sequence[tuple[int, int]], k_max: int) -> list[float | None]:
    """For draft positions 1..k_max: accepted / reached, where a position is reached when the
    drafter proposed it and every earlier draft token of the pass was accepted."""
    out: list[float | None] = []
    for pos in range(1, k_max + 1):
        reached = sum(1 for d, a in passes if d >= pos and a >= pos - 1)
        accepted = sum(1 for _, a in passes if a >= pos)
        out.append(accepted / reached if reached else None)
    return out


def greedy_identity(reference: Mapping[tuple[int, str], Sequence[int]],
                    runs: Mapping[tuple[int, str], Sequence[int]]) -> tuple[int, int]:
    """(identical, compared): runs whose token ids equal the target-alone run of the same
    (round, prompt)."""
    same = compared = 0
    for key, ids in runs.items():
        ref = reference.get(key)
        if ref is not None:
            compared += 1
            same += int(list(ids) == list(ref))
    return same, compared
