"""Drafting: cheap guesses of the next tokens, in the target's token ids.

Mirrors llama.cpp's split of drafting (common/speculative.cpp) from verification (verify.py): a
drafter only proposes; it never decides what is emitted. The chain asks its drafters in order
(the suffix drafter, free, then the draft model) and the first non-empty proposal wins; after
verification the drafter that made it is told how much was kept (`accept`), the others that the
round went by without them (`idle`). Each drafter keeps its own counters and what it learned."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from specchat.engine.limits import MAX_DRAFT
from specchat.engine.llama.model import LlamaModel
from specchat.engine.llama.prompt_cache import restore_prefix
from specchat.engine.speculative.adaptive import DraftLengthController
from specchat.engine.speculative.costs import CostModel
from specchat.engine.speculative.sampling import distribution, greedy, sample, top_probability
from specchat.engine.speculative.suffix import BUCKETS, SuffixDrafter, SuffixTrust
from specchat.engine.types import (
    DrafterCounters,
    DrafterKind,
    GenerationSettings,
    Message,
    SpecSettings,
)

SNAPSHOT_VERSION = 2  # what learned.py keeps per pair: costs, the model's and the suffix's


@dataclass
class Draft:
    tokens: list[int]
    # The draft's distribution for each proposed token (sampling with a model drafter), or None
    # when the proposal is deterministic (greedy, suffix, cross-vocabulary).
    q: list[np.ndarray] | None = None
    kind: DrafterKind | None = None  # which drafter of the chain made it (None: nothing drafted)
    draft_s: float = 0.0  # what making it cost in a steady round (catch-up on 1-2 tokens incl.)
    paused_s: float = 0.0  # catching up after the drafter was off: not a steady round cost
    catchup_s: float = 0.0  # all of the drafter's catch-up on the context
    catchup_tokens: int = 0  # tokens evaluated for that (1-2 in steady state; more after a pause)
    match_len: int = 0  # suffix proposals: tokens of context matched
    from_history: bool = False  # suffix proposals: copied from an earlier request


NO_DRAFT = Draft([])


class Proposer(Protocol):
    """A draft model reading the context, in the target's vocabulary or through text."""

    typical_acceptance: float

    def propose(
        self, context: Sequence[int], n: int, settings: GenerationSettings,
        rng: np.random.Generator,
    ) -> Draft:
        """Up to n tokens that follow `context` (all target token ids so far)."""
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
        n = min(n, m.n_ctx - len(m.tokens))
        for i in range(n):
            row = m.logits(-1)
            if self.p_min > 0 and top_probability(row) < self.p_min:
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
        return Draft(
            tokens,
            dists,
            draft_s=time.perf_counter() - t1,
            catchup_s=t1 - t0,
            catchup_tokens=caught_up,
        )


class PacedModelDrafter:
    """The draft model in the chain: a proposer (same vocabulary or cross-vocabulary) and the
    controller that decides each round how many tokens it drafts, if any."""

    kind = DrafterKind.MODEL

    def __init__(self, proposer: Proposer, controller: DraftLengthController) -> None:
        self.proposer = proposer
        self.controller = controller
        self.counters = DrafterCounters()

    def draft(
        self, context: Sequence[int], limit: int, settings: GenerationSettings,
        rng: np.random.Generator,
    ) -> Draft:
        k = self.controller.next_k(limit, lag=lambda: self.proposer.lag(context))
        if k <= 0:
            return NO_DRAFT
        draft = self.proposer.propose(context, k, settings, rng)
        # Catching up on the last round's 1-2 tokens is part of every round's draft cost;
        # catching up after speculation was off is not (charge 2 tokens' worth).
        steady = min(1.0, 2 / max(draft.catchup_tokens, 1))
        draft.tokens = draft.tokens[:k]
        draft.kind = self.kind
        draft.paused_s = draft.catchup_s * (1 - steady)
        draft.draft_s += draft.catchup_s * steady
        return draft

    def expected_rate(self, limit: int) -> float:
        return self.controller.expected_rate(limit)

    def accept(self, draft: Draft, accepted: int, round_s: float) -> None:
        self.counters.accept(len(draft.tokens), accepted, draft.draft_s + draft.paused_s)
        self.controller.record(
            drafted=len(draft.tokens),
            accepted=accepted,
            draft_s=draft.draft_s,
            round_s=round_s,
            catchup_s=draft.catchup_s,
            catchup_tokens=draft.catchup_tokens,
        )

    def idle(self, round_s: float) -> None:
        self.controller.idle(round_s)


class DrafterChain:
    """Drafters in order of cost, as llama.cpp chains them: each round the suffix drafter's
    proposal (free to make) when verifying it pays better than the draft model is expected to,
    else the draft model when its controller says it pays, else nothing (the target alone)."""

    def __init__(
        self,
        suffix: SuffixDrafter | None,
        model: PacedModelDrafter | None,
        costs: CostModel,
        adaptive: bool = True,
        draft_max: int = 8,
        suffix_max: int = MAX_DRAFT,
    ) -> None:
        if suffix is None and model is None:
            raise ValueError("a drafter chain needs at least one drafter")
        self.suffix = suffix
        self.model = model
        self.costs = costs
        self.adaptive = adaptive
        self.draft_max = draft_max
        self.suffix_max = suffix_max

    @property
    def drafters(self) -> list[SuffixDrafter | PacedModelDrafter]:
        return [d for d in (self.suffix, self.model) if d is not None]

    @property
    def controller(self) -> DraftLengthController | None:
        return self.model.controller if self.model is not None else None

    # ---- a reply's life ------------------------------------------------------------------------

    def reset(self) -> None:
        if self.suffix is not None:
            self.suffix.reset()
        if self.model is not None:
            self.model.proposer.reset()

    def lag(self, context: Sequence[int]) -> int:
        return self.model.proposer.lag(context) if self.model is not None else 0

    def expects_model_drafts(self) -> bool:
        """Whether the draft model will likely draft soon (so it reads the prompt now)."""
        return self.model is not None and self.model.controller.expects_to_draft()

    def prepare(self, prompt: Sequence[int]) -> None:
        if self.model is not None:
            self.model.proposer.prepare(prompt)

    def begin(self, prompt: Sequence[int], messages: Sequence[Message] | None) -> None:
        if self.suffix is not None:
            self.suffix.begin(prompt)
        if self.model is not None:
            self.model.proposer.begin(prompt, messages)

    # ---- one round -----------------------------------------------------------------------------

    def draft(
        self,
        context: Sequence[int],
        limit: int,
        settings: GenerationSettings,
        rng: np.random.Generator,
    ) -> Draft:
        """This round's draft of at most `limit` tokens (empty: the target alone)."""
        if limit <= 0:
            return NO_DRAFT
        found = NO_DRAFT
        if self.suffix is not None:
            found = self._suffix_draft(context, limit)
            if found.tokens:
                return found
        if self.model is not None:
            return self.model.draft(context, min(limit, self.draft_max), settings, rng)
        return found  # (with the match it found, for the record)

    def _suffix_draft(self, context: Sequence[int], limit: int) -> Draft:
        assert self.suffix is not None
        t0 = time.perf_counter()
        proposal = self.suffix.propose(context, min(limit, self.suffix_max))
        n = 0
        if not self.adaptive:  # fixed setup: verify what the suffix drafter trusts (with a
            # model to fall back on, not a short match)
            short = self.model is not None and proposal.match_len < BUCKETS[0]
            n = 0 if short else len(proposal.tokens)
        elif proposal.tokens:
            beat = self.model.expected_rate(limit) if self.model is not None else 0.0
            n, _ = self.suffix.trust_for(proposal).plan(proposal, limit, self.costs, beat)
        self.suffix.sent(proposal, n)
        return Draft(
            proposal.tokens[:n],
            None,  # deterministic: sampling verifies it by sample-and-match
            kind=self.suffix.kind if n else None,
            draft_s=time.perf_counter() - t0,
            match_len=proposal.match_len,
            from_history=proposal.from_history and n > 0,
        )

    def after_round(self, draft: Draft, accepted: int, round_s: float) -> None:
        """The drafter that drafted learns how much the target kept; the others that the round
        went by without them. round_s excludes a catch-up after a pause."""
        for drafter in self.drafters:
            if drafter.kind is draft.kind:
                drafter.accept(draft, accepted, round_s)
            else:
                drafter.idle(round_s)

    # ---- what it learned, kept between runs (learned.py) ---------------------------------------

    def snapshot(self) -> dict[str, object]:
        return {
            "version": SNAPSHOT_VERSION,
            "costs": self.costs.snapshot(),
            "model": self.model.controller.snapshot() if self.model is not None else None,
            "suffix": self.suffix.trust.snapshot() if self.suffix is not None else None,
        }

    def restore(self, data: Mapping[str, object]) -> bool:
        """Start from a snapshot; False, and nothing changed, unless every part is readable."""
        costs, trust = CostModel(), SuffixTrust()
        model = DraftLengthController(draft_max=self.draft_max)
        model_data, suffix_data = data.get("model"), data.get("suffix")
        ok = data.get("version") == SNAPSHOT_VERSION and costs.restore(data.get("costs"))
        if ok and self.model is not None:
            ok = isinstance(model_data, Mapping) and model.restore(model_data)
        if ok and self.suffix is not None:
            ok = isinstance(suffix_data, Mapping) and trust.restore(suffix_data)
        if not ok:
            return False
        self.costs.restore(data.get("costs"))  # (the chain's own object: its drafters read it)
        if self.model is not None:
            self.model.controller.learn_from(model)
        if self.suffix is not None:
            self.suffix.trust = trust
        return True

    def learn_from(self, old: DrafterChain, same_model: bool = True) -> None:
        """Keep what an earlier chain learned (settings changed between replies): the suffix
        drafter's trusts, and the model's acceptance when the model is the same."""
        if self.suffix is not None and old.suffix is not None:
            self.suffix.trust = old.suffix.trust
            self.suffix.history_trust = old.suffix.history_trust
            self.suffix.cursor_trust = old.suffix.cursor_trust
        if same_model and self.model is not None and old.model is not None:
            self.model.controller.learn_from(old.model.controller)


def build_chain(
    spec: SpecSettings,
    model: Proposer | None,
    costs: CostModel,
) -> DrafterChain:
    """The chain a pair's settings ask for: the suffix drafter (unless switched off), then the
    draft model's proposer under its own controller."""
    paced = None
    if model is not None:
        controller = DraftLengthController(
            draft_max=spec.draft_max,
            adaptive=spec.adaptive,
            draft_min=spec.draft_min,
            typical_acceptance=model.typical_acceptance,
            costs=costs,
        )
        paced = PacedModelDrafter(model, controller)
    suffix = SuffixDrafter() if (spec.suffix or model is None) else None
    return DrafterChain(suffix, paced, costs, adaptive=spec.adaptive, draft_max=spec.draft_max,
                        suffix_max=spec.suffix_max)
