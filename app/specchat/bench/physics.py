"""Measure a pair's physics on this machine: c (draft cost per token relative to the target) and
b(n) (target cost of one pass over n tokens relative to one token).

Passes are timed in the order the engine runs them, because that order changes their cost (what
the previous pass left in the CPU caches, how warm the threads are): the target alone runs
one-token passes back to back; a speculative round runs n-1 one-token draft passes and then one
target pass over n tokens. Each pass reads its logits rows as the engine does."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from specchat.bench.results import Physics
from specchat.engine.llama import LlamaModel
from specchat.engine.sampling import greedy

ALONE_RUN = 4  # one-token target passes in a row per repetition


def _timed_pass(model: LlamaModel, tokens: Sequence[int]) -> float:
    """One pass appended to the cache; returns its time, logits read included."""
    t = time.perf_counter()
    if len(tokens) == 1:
        model.decode(list(tokens), "last")
        greedy(model.logits(-1))
    else:
        model.decode(list(tokens), "all")
        for row in range(-len(tokens), 0):
            greedy(model.logits(row))
    return time.perf_counter() - t


def measure_physics(target: LlamaModel, draft: LlamaModel | None, context: Sequence[int],
                    max_n: int, reps: int = 5) -> Physics:
    """Time target-alone runs and draft-then-verify rounds of every size up to max_n after
    `context` (evaluated first). Medians over reps; one warm-up rep is discarded."""
    ctx = list(context)[: max(1, min(len(context), 256))]
    fill = [ctx[i % len(ctx)] for i in range(max(max_n, ALONE_RUN))]
    target.reset()
    target.decode(ctx, "last")
    if draft is not None:
        draft.reset()
        draft.decode(ctx, "last")
    base = len(ctx)
    alone: list[float] = []
    verify: dict[int, list[float]] = {n: [] for n in range(2, max_n + 1)}
    drafting: list[float] = []
    for rep in range(reps + 1):
        times = [_timed_pass(target, fill[i : i + 1]) for i in range(ALONE_RUN)]
        target.truncate(base)
        if rep:
            alone.extend(times)
        for n in range(2, max_n + 1):
            if draft is not None:
                times = [_timed_pass(draft, fill[i : i + 1]) for i in range(n - 1)]
                draft.truncate(base)
                if rep:
                    drafting.extend(times)
            dt = _timed_pass(target, fill[:n])
            target.truncate(base)
            if rep:
                verify[n].append(dt)
    target.reset()
    if draft is not None:
        draft.reset()
    one = statistics.median(alone)
    b = {1: 1.0} | {n: statistics.median(ts) / one for n, ts in verify.items()}
    d_one = statistics.median(drafting) if drafting else None
    return Physics(
        target_token_ms=one * 1000,
        draft_token_ms=None if d_one is None else d_one * 1000,
        c=None if d_one is None else d_one / one,
        b=b,
    )
