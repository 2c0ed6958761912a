"""Warm-up and a first measurement of what each model costs, taken once at load time.

llama.cpp warms a model up with one pass before serving (its first pass pays for page faults and
buffer setup). Here that pass also times one-token and batched target passes and one-token and
batched draft passes, so the draft-length controller starts from this machine's real costs: a
draft that cannot pay even if every token were accepted is never run, and nothing is spent on
evaluating its prompt to find that out."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from specchat.engine.llama import LlamaModel
from specchat.engine.sampling import greedy

REPS = 2  # timed repetitions per pass size (after one untimed warm-up pass)
CATCHUP_BATCH = 16  # batch size timed for the draft's catch-up (prompt evaluation) cost


@dataclass(frozen=True)
class LoadCosts:
    t_verify: dict[int, float] = field(default_factory=dict)  # target pass over n tokens, s
    t_draft: float | None = None  # one draft pass (one drafted token), s
    t_catchup: float | None = None  # draft prompt evaluation, s per token


def _filler(model: LlamaModel, n: int) -> list[int]:
    seed = model.tokenize("The quick brown fox jumps over the lazy dog.", add_special=False,
                          parse_special=False) or [0]
    return [seed[i % len(seed)] for i in range(n)]


def timed_pass(model: LlamaModel, tokens: Sequence[int], verify: bool = True) -> float:
    """Time one pass appended to the cache, reading its logits rows as the engine does: every
    row of a verify batch, the last row otherwise (one token, or a catch-up)."""
    t = time.perf_counter()
    every_row = verify and len(tokens) > 1
    model.decode(list(tokens), "all" if every_row else "last")
    for row in range(-len(tokens) if every_row else -1, 0):
        greedy(model.logits(row))
    return time.perf_counter() - t


def _time_pass(model: LlamaModel, tokens: Sequence[int], verify: bool = True) -> float:
    """timed_pass, then the cache as it was."""
    n_past = len(model.tokens)
    dt = timed_pass(model, tokens, verify)
    model.truncate(n_past)
    return dt


def warm_up(model: LlamaModel) -> None:
    """One untimed pass, then an empty cache (what llama.cpp does before serving)."""
    model.reset()
    model.decode(_filler(model, 2), "last")
    model.reset()


def measure_load_costs(target: LlamaModel, draft: LlamaModel | None, draft_max: int) -> LoadCosts:
    """Time target passes of 1, 3 and draft_max + 1 tokens and draft passes after a short
    context; medians of REPS. Both caches are left empty."""
    context = _filler(target, 8)
    target.reset()
    target.decode(context, "last")
    sizes = sorted({1, 3, draft_max + 1})
    fill = _filler(target, max(sizes))
    t_verify = {
        n: statistics.median(_time_pass(target, fill[:n]) for _ in range(REPS))
        for n in sizes
    }
    target.reset()
    t_draft = t_catchup = None
    if draft is not None:
        dctx = _filler(draft, 8)
        draft.reset()
        draft.decode(dctx, "last")
        dfill = _filler(draft, CATCHUP_BATCH)
        t_draft = statistics.median(_time_pass(draft, dfill[:1]) for _ in range(REPS))
        t_catchup = statistics.median(
            _time_pass(draft, dfill, verify=False) for _ in range(REPS)
        ) / CATCHUP_BATCH
        draft.reset()
    return LoadCosts(t_verify, t_draft, t_catchup)
