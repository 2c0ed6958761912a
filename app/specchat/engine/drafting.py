"""Drafting: cheap guesses of the next tokens, in the target's token ids.

Mirrors llama.cpp's split of drafting (common/speculative.cpp) from verification (verify.py).
A drafter only proposes; it never decides what is emitted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from specchat.engine.llama import LlamaModel
from specchat.engine.sampling import distribution, greedy, sample, top_probability
from specchat.engine.types import GenerationSettings, Message


@dataclass
class Draft:
    tokens: list[int]
    # The draft's distribution for each proposed token (sampling with a model drafter), or None
    # when the proposal is deterministic (greedy, lookup, cross-vocabulary).
    q: list[np.ndarray] | None = None
    draft_s: float = 0.0  # time spent producing the proposed tokens
    catchup_s: float = 0.0  # time spent bringing the drafter up to date with the context
    catchup_tokens: int = 0  # tokens evaluated for that (1-2 in steady state; more after a pause)
    stopped_early: bool = False  # confidence fell below p_min
    extra: dict[str, float] = field(default_factory=dict)


class Drafter(Protocol):
    # Acceptance this kind of drafter usually reaches (the controller explores it only where
    # it would pay at this rate; 1.0: wherever a perfect draft would pay).
    typical_acceptance: float

    def propose(
        self,
        context: Sequence[int],
        n: int,
        settings: GenerationSettings,
        rng: np.random.Generator,
    ) -> Draft:
        """Propose up to n tokens that follow `context` (all target token ids so far)."""
        ...

    def reset(self) -> None:
        """Forget cached state (called when the target's cache is cleared)."""

    def lag(self, context: Sequence[int]) -> int:
        """About how many tokens the drafter must read before it can draft after `context`."""

    def prepare(self, prompt: Sequence[int]) -> None:
        """Read the prompt now (prompt processing), so drafting starts without catching up."""

    def begin(self, prompt: Sequence[int], messages: Sequence[Message] | None) -> None:
        """A new reply starts after `prompt` (from `messages`, when it came from a chat)."""


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class ModelDrafter:
    """A small GGUF model with the target's vocabulary. Its KV cache follows the accepted text:
    each call reuses the longest common prefix and evaluates only what is new."""

    typical_acceptance = 1.0

    def __init__(self, model: LlamaModel, p_min: float) -> None:
        self.model = model
        self.p_min = p_min

    def reset(self) -> None:
        self.model.reset()

    def lag(self, context: Sequence[int]) -> int:
        # The cache holds a prefix of the context (up to the last rejected drafts): cheap estimate.
        return max(len(context) - len(self.model.tokens), 1)

    def prepare(self, prompt: Sequence[int]) -> None:
        self.catch_up(prompt)

    def begin(self, prompt: Sequence[int], messages: Sequence[Message] | None) -> None:
        pass

    def catch_up(self, context: Sequence[int]) -> int:
        """Evaluate context so that the model's last logits predict the token after it.
        Returns how many tokens that took."""
        m = self.model
        keep = common_prefix(m.tokens, context)
        if keep == len(context):  # all cached, but we need fresh logits for the last one
            keep -= 1
        m.truncate(keep)
        m.decode(context[keep:], logits="last")
        return len(context) - keep

    def propose(
        self,
        context: Sequence[int],
        n: int,
        settings: GenerationSettings,
        rng: np.random.Generator,
    ) -> Draft:
        t0 = time.perf_counter()
        caught_up = self.catch_up(context)
        t1 = time.perf_counter()
        m = self.model
        tokens: list[int] = []
        dists: list[np.ndarray] | None = None if settings.greedy else []
        stopped = False
        room = m.n_ctx - len(m.tokens)
        n = min(n, room)
        for i in range(n):
            row = m.logits(-1)
            if self.p_min > 0 and top_probability(row) < self.p_min:
                stopped = True
                break
            if dists is None:
                token = greedy(row)
            else:
                q = distribution(row, settings)
                token = sample(q, rng)
                dists.append(q)
            tokens.append(token)
            if m.is_eog(token):
                break  # nothing follows the end of the reply
            if i + 1 < n:
                m.decode([token], logits="last")
        t2 = time.perf_counter()
        return Draft(
            tokens,
            dists,
            draft_s=t2 - t1,
            catchup_s=t1 - t0,
            catchup_tokens=caught_up,
            stopped_early=stopped,
        )


class LookupDrafter:
    """Prompt lookup: find the latest earlier occurrence of the context's last n-gram and propose
    what followed it. No model; shines when the reply repeats the prompt (edits, code)."""

    typical_acceptance = 1.0

    def __init__(self, ngram_max: int = 4, ngram_min: int = 1) -> None:
        self.ngram_max = ngram_max
        self.ngram_min = ngram_min

    def reset(self) -> None:
        pass

    def lag(self, context: Sequence[int]) -> int:
        return 0

    def prepare(self, prompt: Sequence[int]) -> None:
        pass

    def begin(self, prompt: Sequence[int], messages: Sequence[Message] | None) -> None:
        pass

    def propose(
        self,
        context: Sequence[int],
        n: int,
        settings: GenerationSettings,
        rng: np.random.Generator,
    ) -> Draft:
        t0 = time.perf_counter()
        tokens = lookup(context, n, self.ngram_max, self.ngram_min)
        return Draft(tokens, None, draft_s=time.perf_counter() - t0)


def lookup(context: Sequence[int], n: int, ngram_max: int, ngram_min: int) -> list[int]:
    arr = np.asarray(context, dtype=np.int64)
    size = arr.shape[0]
    for g in range(min(ngram_max, size - 1), ngram_min - 1, -1):
        suffix = arr[size - g :]
        # candidate starts of an earlier occurrence (the match must end before the suffix starts)
        starts = np.flatnonzero(arr[: size - g] == suffix[0])
        for start in starts[::-1]:
            if start + g <= size - 1 and np.array_equal(arr[start : start + g], suffix):
                follow = arr[start + g : start + g + n]
                if follow.size:
                    return [int(t) for t in follow]
    return []
