"""Measure a pair's physics on this machine: c (draft cost per token relative to the target) and
b(n) (target cost of one pass over n tokens relative to one token).

Passes are timed in the order the engine runs them, because that order changes their cost (what
the previous pass left in the CPU caches, how warm the threads are): the target alone runs
one-token passes back to back; a speculative round runs n-1 one-token draft passes and then one
target pass over n tokens. Each pass reads its logits rows as the engine does."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from specchat.bench.results import Physics
from specchat.engine.llama.compat import vocab_mismatch
from specchat.engine.llama.model import LlamaModel
from specchat.engine.speculative.costs import timed_pass

ALONE_RUN = 4  # one-token target passes in a row per repetition


class PhysicsSampler:
    """Collects timings one repetition at a time, so that a benchmark can spread them over its
    whole run: the machine's speed drifts, and the physics must see the same drift as the runs
    they predict."""

    def __init__(self, target: LlamaModel, draft: LlamaModel | None, context: Sequence[int],
                 max_n: int) -> None:
        self.target, self.draft, self.max_n = target, draft, max_n
        self.ctx = list(context)[: max(1, min(len(context), 256))]
        self.fill = [self.ctx[i % len(self.ctx)] for i in range(max(max_n, ALONE_RUN))]
        # A cross-vocabulary draft reads the same text in its own tokens.
        self.draft_ctx = self.ctx
        if draft is not None and vocab_mismatch(target, draft) is not None:
            text = target.detokenize(self.ctx)
            self.draft_ctx = draft.tokenize(text, add_special=True, parse_special=True)[:256] or [0]
        self.draft_fill = [self.draft_ctx[i % len(self.draft_ctx)] for i in range(max_n)]
        self.alone: list[float] = []
        self.verify: dict[int, list[float]] = {n: [] for n in range(2, max_n + 1)}
        self.drafting: list[float] = []

    def rep(self, keep: bool = True) -> None:
        """One repetition: target-alone passes, then a draft-and-verify round of every size.
        Both caches are left empty. `keep=False` times a warm-up and discards it."""
        target, draft, fill = self.target, self.draft, self.fill
        target.reset()
        target.decode(self.ctx, "last")
        if draft is not None:
            draft.reset()
            draft.decode(self.draft_ctx, "last")
        base, draft_base = len(self.ctx), len(self.draft_ctx)
        times = [timed_pass(target, fill[i : i + 1]) for i in range(ALONE_RUN)]
        target.truncate(base)
        if keep:
            self.alone.extend(times)
        for n in range(2, self.max_n + 1):
            if draft is not None:
                times = [timed_pass(draft, self.draft_fill[i : i + 1]) for i in range(n - 1)]
                draft.truncate(draft_base)
                if keep:
                    self.drafting.extend(times)
            dt = timed_pass(target, fill[:n])
            target.truncate(base)
            if keep:
                self.verify[n].append(dt)
        target.reset()
        if draft is not None:
            draft.reset()

    def result(self) -> Physics:
        """Medians over every kept repetition."""
        one = statistics.median(self.alone)
        b = {1: 1.0} | {n: statistics.median(ts) / one for n, ts in self.verify.items()}
        d_one = statistics.median(self.drafting) if self.drafting else None
        return Physics(
            target_token_ms=one * 1000,
            draft_token_ms=None if d_one is None else d_one * 1000,
            c=None if d_one is None else d_one / one,
            b=b,
        )
