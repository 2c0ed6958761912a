"""Measure a pair's physics on this machine: c (draft cost per token relative to the target) and
b(n) (target cost of one pass over n tokens relative to one token), as the engine uses them:
one-token passes ask for the last row of logits, n-token verify passes for every row."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from specchat.bench.results import Physics
from specchat.engine.llama import LlamaModel


def _time_pass(model: LlamaModel, tokens: Sequence[int]) -> float:
    n_past = len(model.tokens)
    t = time.perf_counter()
    model.decode(list(tokens), "all" if len(tokens) > 1 else "last")
    dt = time.perf_counter() - t
    model.truncate(n_past)
    return dt


def measure_physics(target: LlamaModel, draft: LlamaModel | None, context: Sequence[int],
                    max_n: int, reps: int = 5) -> Physics:
    """Time passes after `context` (evaluated first), interleaving all pass sizes in each rep so
    that machine drift affects them alike. Medians over reps; one warm-up rep is discarded."""
    ctx = list(context)[: max(1, min(len(context), 256))]
    fill = [ctx[i % len(ctx)] for i in range(max_n)]
    target.reset()
    target.decode(ctx, "last")
    if draft is not None:
        draft.reset()
        draft.decode(ctx, "last")
    sizes = list(range(1, max_n + 1))
    t_times: dict[int, list[float]] = {n: [] for n in sizes}
    d_times: list[float] = []
    for rep in range(reps + 1):
        for n in sizes:
            dt = _time_pass(target, fill[:n])
            if rep:
                t_times[n].append(dt)
        if draft is not None:
            dt = _time_pass(draft, fill[:1])
            if rep:
                d_times.append(dt)
    target.reset()
    if draft is not None:
        draft.reset()
    one = statistics.median(t_times[1])
    b = {n: statistics.median(t_times[n]) / one for n in sizes}
    d_one = statistics.median(d_times) if d_times else None
    return Physics(
        target_token_ms=one * 1000,
        draft_token_ms=None if d_one is None else d_one * 1000,
        c=None if d_one is None else d_one / one,
        b=b,
    )
