"""Drafting: cheap guesses of the next tokens, in the target's token ids.

Mirrors llama.cpp's split of drafting (common/speculative.cpp) from verification (verify.py).
A drafter only proposes; it never decides what is emitted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from specchat.engine.adaptive import SUFFIX_BUCKETS, DraftLengthController
from specchat.engine.llama import LlamaModel
from specchat.engine.prompt_cache import restore_prefix
from specchat.engine.sampling import distribution, greedy, sample, top_probability
from specchat.engine.suffix import SuffixDrafter
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
    kind: str = ""  # which drafter of a chain made it: "model", "suffix" ("" when empty)
    match_len: int = 0  # suffix drafts: tokens of context matched


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
        restore_prefix(m, context)  # a saved state, when it shares more than the cache
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


class ChainDrafter:
    """Drafters in order of cost, as llama.cpp chains them: each round the suffix drafter's
    proposal (free to make) when the controller says verifying it pays (and the draft model is
    not predicted to do better), else the model drafter when the controller says it pays, else
    nothing (the target alone). Each draft says which drafter made it, so the controller
    credits the right one."""

    def __init__(self, suffix: SuffixDrafter | None, model: Drafter | None) -> None:
        if suffix is None and model is None:
            raise ValueError("a drafter chain needs at least one drafter")
        self.suffix = suffix
        self.model = model

    @property
    def typical_acceptance(self) -> float:
        return self.model.typical_acceptance if self.model is not None else 1.0

    def reset(self) -> None:
        if self.suffix is not None:
            self.suffix.reset()
        if self.model is not None:
            self.model.reset()

    def lag(self, context: Sequence[int]) -> int:
        return self.model.lag(context) if self.model is not None else 0

    def prepare(self, prompt: Sequence[int]) -> None:
        if self.model is not None:
            self.model.prepare(prompt)

    def begin(self, prompt: Sequence[int], messages: Sequence[Message] | None) -> None:
        if self.suffix is not None:
            self.suffix.begin(prompt)
        if self.model is not None:
            self.model.begin(prompt, messages)

    def draft(
        self,
        context: Sequence[int],
        limit: int,
        settings: GenerationSettings,
        rng: np.random.Generator,
        ctrl: DraftLengthController,
    ) -> Draft:
        """This round's draft of at most `limit` tokens (empty: the target alone)."""
        limit = min(limit, ctrl.draft_max)
        if limit <= 0:
            return Draft([])
        nothing = Draft([])
        if self.suffix is not None:
            nothing = self._suffix_draft(context, limit, ctrl)
            if nothing.tokens:
                return nothing
        if self.model is None:
            return nothing  # (with the match it found, for the record)
        model = self.model
        k = ctrl.next_k(limit, lag=lambda: model.lag(context))
        if k <= 0:
            return nothing
        draft = model.propose(context, k, settings, rng)
        draft.tokens = draft.tokens[:k]
        draft.kind = "model"
        return draft

    def _suffix_draft(
        self, context: Sequence[int], limit: int, ctrl: DraftLengthController
    ) -> Draft:
        assert self.suffix is not None
        t0 = time.perf_counter()
        proposal = self.suffix.propose(context, limit)
        n = 0
        if not ctrl.adaptive:  # fixed setup: verify what the suffix drafter trusts (with a
            # model to fall back on, not a short match)
            short = self.model is not None and proposal.match_len < SUFFIX_BUCKETS[0]
            n = 0 if short else len(proposal.tokens)
        elif proposal.tokens:
            n, rate = ctrl.suffix_plan(proposal.support, proposal.match_len, limit)
            if n and self.model is not None and ctrl.model_rate(limit) > rate:
                n = 0  # the draft model is expected to do better this round
        ctrl.note_suffix_proposal(proposal.match_len, len(proposal.tokens), n)
        return Draft(
            proposal.tokens[:n],
            None,  # deterministic: sampling verifies it by sample-and-match
            draft_s=time.perf_counter() - t0,
            kind="suffix" if n else "",
            match_len=proposal.match_len,
        )
