"""The drafter chain and the suffix drafter's trust (no model: a scripted model proposer)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from specchat.engine.limits import MAX_DRAFT
from specchat.engine.speculative.costs import CostModel
from specchat.engine.speculative.drafting import Draft, DrafterChain, build_chain
from specchat.engine.speculative.suffix import SuffixDrafter, SuffixTrust, bucket
from specchat.engine.types import DrafterKind, DraftMode, GenerationSettings, Message, SpecSettings

GREEDY = GenerationSettings()
RNG = np.random.default_rng(0)
# verifying n tokens costs 1 + 0.5 (n - 1) one-token passes (a 2-core CPU's shape)
CPU_COSTS = {2: 0.15, 3: 0.2, 5: 0.3, 9: 0.5}


def verify_cost(n: int) -> float:
    return 0.05 + 0.05 * n  # the line through CPU_COSTS


class ScriptedModel:
    """A model proposer that proposes a fixed token and counts its calls."""

    typical_acceptance = 1.0

    def __init__(self) -> None:
        self.calls = 0

    def propose(self, context: Sequence[int], n: int, settings: GenerationSettings,
                rng: np.random.Generator) -> Draft:
        self.calls += 1
        return Draft([42] * n, None, draft_s=0.001 * n)

    def reset(self) -> None:
        pass

    def lag(self, context: Sequence[int]) -> int:
        return 1

    def prepare(self, prompt: Sequence[int]) -> None:
        pass

    def begin(self, prompt: Sequence[int], messages: Sequence[Message] | None) -> None:
        pass


def cpu_costs(c_draft: float | None = 0.01) -> CostModel:
    """Costs measured in this run: a 100 ms target token, batches growing half a token each."""
    costs = CostModel()
    costs.record_pass(1, 0.1)
    for n, t in CPU_COSTS.items():
        costs.record_pass(n, t)
    if c_draft is not None:
        costs.draft.add(c_draft)
    return costs


def chain(model: ScriptedModel | None, costs: CostModel, suffix: bool = True) -> DrafterChain:
    spec = SpecSettings(mode=DraftMode.MODEL if model else DraftMode.LOOKUP, suffix=suffix)
    return build_chain(spec, model, costs)


def explored(c: DrafterChain, succ: float, fail: float) -> None:
    """The model's controller has explored and seen this acceptance."""
    assert c.model is not None
    ctrl = c.model.controller
    ctrl._explored = 3
    ctrl._succ, ctrl._fail = succ, fail


CODE = list(range(1000, 1100))  # a pasted "file": every token distinct


def test_a_long_match_is_drafted_by_the_suffix_drafter_first() -> None:
    model = ScriptedModel()
    c = chain(model, cpu_costs())
    prompt = [*CODE, 7, 8]
    c.begin(prompt, None)
    ctx = [*prompt, *CODE[:20]]  # the reply is copying the file
    d = c.draft(ctx, 100, GREEDY, RNG)
    assert d.kind is DrafterKind.SUFFIX and d.match_len >= 20
    assert 2 <= len(d.tokens) < 30 and d.tokens == CODE[20 : 20 + len(d.tokens)]
    assert d.q is None  # deterministic proposal: sampling verifies it by sample-and-match
    assert model.calls == 0
    for _ in range(10):  # long matches keep being accepted: proposals grow to the full length
        c.after_round(d, len(d.tokens), verify_cost(len(d.tokens) + 1))
        d = c.draft(ctx, 100, GREEDY, RNG)
    assert d.tokens == CODE[20:52]  # a long match is followed to --suffix-max
    assert model.calls == 0
    assert c.suffix is not None and c.suffix.counters.proposals == 10


def test_suffix_proposals_run_past_the_models_draft_max() -> None:
    """A reply copying a whole function is verified in long runs (a token costs least there),
    however short the draft model's draft_max."""
    c = chain(None, cpu_costs())
    prompt = [*CODE, 7, 8]
    c.begin(prompt, None)
    ctx = [*prompt, *CODE[:60]]
    assert c.suffix is not None
    for _ in range(20):  # earned trust
        c.suffix.trust.record(60, 30, 30)
    d = c.draft(ctx, 100, GREEDY, RNG)
    assert d.kind is DrafterKind.SUFFIX and len(d.tokens) == min(MAX_DRAFT, 40)
    assert len(d.tokens) > SpecSettings().draft_max
    assert len(c.draft(ctx, 5, GREEDY, RNG).tokens) == 5  # never past the room left
    capped = build_chain(SpecSettings(mode=DraftMode.LOOKUP, suffix_max=4), None, cpu_costs())
    capped.begin(prompt, None)
    assert capped.suffix is not None
    capped.suffix.trust = c.suffix.trust
    assert len(capped.draft(ctx, 100, GREEDY, RNG).tokens) == 4  # --suffix-max


def test_without_a_match_the_model_drafts_when_it_pays() -> None:
    model = ScriptedModel()
    c = chain(model, cpu_costs())
    explored(c, 9.0, 1.0)
    c.begin([1, 2, 3], None)
    d = c.draft([1, 2, 3, 4], 8, GREEDY, RNG)
    assert d.kind is DrafterKind.MODEL and d.tokens and set(d.tokens) == {42}
    assert model.calls == 1
    c.after_round(d, len(d.tokens), 0.3)
    assert c.model is not None and c.model.counters.accepted == len(d.tokens)


def test_nothing_drafts_when_neither_pays() -> None:
    c = chain(None, cpu_costs(None))
    c.begin([1, 2, 3], None)
    none = c.draft([1, 2, 3, 4], 8, GREEDY, RNG)
    assert none.tokens == [] and none.kind is None and none.match_len == 0
    # a two-token match (short bucket, 40% prior) is not worth a batched pass on a CPU
    d = c.draft([1, 2, 3, 4, 9, 1, 2], 8, GREEDY, RNG)
    assert d.tokens == [] and d.match_len == 2


def proposal(match_len: int, support: Sequence[float]):
    from specchat.engine.speculative.suffix import SuffixProposal

    return SuffixProposal(list(range(len(support))), match_len, list(support), 1)


def test_suffix_length_follows_earned_acceptance() -> None:
    trust, costs = SuffixTrust(), cpu_costs(None)
    full = proposal(30, [1.0] * 32)
    first = trust.plan(full, 32, costs)[0]  # long matches: the 98% prior
    assert 1 <= first < 32
    for _ in range(10):
        trust.record(30, first, first)
    assert trust.plan(full, 32, costs)[0] == 32  # all accepted: the whole proposal is worth it
    for _ in range(60):  # then long matches turn out to be wrong after 1 token
        trust.record(30, 8, 1)
    assert trust.acceptance(30) < 0.7
    assert trust.plan(full, 32, costs)[0] < first
    assert trust.acceptance(5) == SuffixTrust().acceptance(5)  # the other buckets untouched


def test_support_shortens_a_proposal() -> None:
    trust, costs = SuffixTrust(), cpu_costs(None)
    for _ in range(10):
        trust.record(20, 5, 5)
    assert trust.plan(proposal(20, [1.0] * 5), 8, costs)[0] == 5
    assert trust.plan(proposal(20, [1.0, 1.0, 0.5, 0.5, 0.5]), 8, costs)[0] == 2


def test_suffix_rounds_count_as_model_off_time() -> None:
    c = chain(ScriptedModel(), cpu_costs())
    assert c.model is not None
    ctrl = c.model.controller
    ctrl.last_k = 0
    c.after_round(Draft([1, 2, 3, 4], kind=DrafterKind.SUFFIX, match_len=20), 4, 0.3)
    assert ctrl._off_s == 0.3
    assert bucket(20) == 3 and bucket(1) == 0


def test_a_better_model_wins_over_a_paying_suffix_proposal() -> None:
    """On a pair where the model drafts at full acceptance for little, a shaky suffix proposal
    must not displace it."""
    model = ScriptedModel()
    costs = cpu_costs(0.001)
    c = chain(model, costs)
    explored(c, 50.0, 0.1)  # the model is nearly always right
    text = [1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5]  # a 5-token match
    alone = SuffixDrafter()
    alone.begin(text)
    p = alone.propose(text, 8)
    assert alone.trust.plan(p, 8, costs)[0] > 0  # it alone would pay
    c.begin(text, None)
    d = c.draft(text, 8, GREEDY, RNG)
    assert d.kind is DrafterKind.MODEL and model.calls == 1


def test_a_snapshot_carries_what_every_drafter_learned() -> None:
    c = chain(ScriptedModel(), cpu_costs())
    explored(c, 5.0, 2.0)
    assert c.suffix is not None
    c.suffix.trust.record(25, 6, 6)
    fresh = chain(ScriptedModel(), CostModel())
    assert fresh.restore(c.snapshot())
    assert fresh.suffix is not None and fresh.model is not None and c.model is not None
    assert fresh.suffix.trust.acceptance(25) == c.suffix.trust.acceptance(25)
    assert fresh.model.controller.acceptance == c.model.controller.acceptance
    assert fresh.costs.verify_ratio(9) == c.costs.verify_ratio(9)
    assert not fresh.restore({**c.snapshot(), "version": 1})


def test_a_history_proposal_is_drafted_and_learned_under_its_own_trust() -> None:
    """The chain drafts a continuation found only in an earlier request, marks the draft as
    such (the stats' history_* counts), and credits the history's trust, not the
    conversation's; a rebuilt chain keeps both."""
    from specchat.engine.speculative.suffix import SuffixHistory

    history = SuffixHistory(10_000)
    history.add([*range(5000, 5100)])  # an earlier request
    c = chain(None, cpu_costs())
    assert c.suffix is not None
    c.suffix.history = history
    context = [7, 8, 9, *range(5000, 5030)]  # this one quotes 30 of its tokens
    c.begin(context, None)
    d = c.draft(context, 16, GREEDY, RNG)
    assert d.kind is DrafterKind.SUFFIX and d.from_history
    assert d.tokens == list(range(5030, 5030 + len(d.tokens))) and d.tokens
    local = c.suffix.trust.acceptance(30)
    c.after_round(d, len(d.tokens), 0.2)
    assert c.suffix.trust.acceptance(30) == local  # the conversation's trust is untouched
    assert c.suffix.history_trust.acceptance(30) > local
    rebuilt = chain(None, cpu_costs())
    rebuilt.learn_from(c)
    assert rebuilt.suffix is not None and rebuilt.suffix.history_trust is c.suffix.history_trust
