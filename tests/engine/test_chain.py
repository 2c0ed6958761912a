"""The drafter chain and the controller's suffix accounting (no model: a scripted model drafter)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from specchat.engine.adaptive import DraftLengthController, suffix_bucket
from specchat.engine.drafting import ChainDrafter, Draft
from specchat.engine.suffix import SuffixDrafter
from specchat.engine.types import GenerationSettings, Message

GREEDY = GenerationSettings()
RNG = np.random.default_rng(0)
# verifying n tokens costs 1 + 0.5 (n - 1) one-token passes (a 2-core CPU's shape)
CPU_COSTS = {1: 0.1, 2: 0.15, 3: 0.2, 5: 0.3, 9: 0.5}


def verify_cost(n: int) -> float:
    return 0.05 + 0.05 * n  # the line through CPU_COSTS


class ScriptedModel:
    """A model drafter that proposes a fixed token and counts its calls."""

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


def controller(t_draft: float | None = 0.001) -> DraftLengthController:
    ctrl = DraftLengthController(draft_max=8)
    ctrl.seed(dict(CPU_COSTS), t_draft, t_draft)
    return ctrl


CODE = list(range(1000, 1060))  # a pasted "file": every token distinct


def test_a_long_match_is_drafted_by_the_suffix_drafter_first() -> None:
    model = ScriptedModel()
    chain = ChainDrafter(SuffixDrafter(), model)
    prompt = [*CODE, 7, 8]
    chain.begin(prompt, None)
    ctx = [*prompt, *CODE[:20]]  # the reply is copying the file
    ctrl = controller()
    d = chain.draft(ctx, 8, GREEDY, RNG, ctrl)
    assert d.kind == "suffix" and d.match_len >= 20
    assert 2 <= len(d.tokens) < 8 and d.tokens == CODE[20 : 20 + len(d.tokens)]
    assert d.q is None  # deterministic proposal: sampling verifies it by sample-and-match
    assert model.calls == 0
    for _ in range(10):  # long matches keep being accepted: proposals grow to the full length
        cost = verify_cost(len(d.tokens) + 1)
        ctrl.record(drafted=len(d.tokens), accepted=len(d.tokens), draft_s=0.0,
                    verify_s=cost, round_s=cost, kind="suffix", match_len=d.match_len)
    d = chain.draft(ctx, 8, GREEDY, RNG, ctrl)
    assert d.tokens == CODE[20:28]
    assert model.calls == 0


def test_without_a_match_the_model_drafts_when_it_pays() -> None:
    model = ScriptedModel()
    chain = ChainDrafter(SuffixDrafter(), model)
    ctrl = controller()
    ctrl._explored = 3  # explored: acceptance known to be high
    ctrl._succ, ctrl._fail = 9.0, 1.0
    chain.begin([1, 2, 3], None)
    d = chain.draft([1, 2, 3, 4], 8, GREEDY, RNG, ctrl)
    assert d.kind == "model" and d.tokens and set(d.tokens) == {42}
    assert model.calls == 1


def test_nothing_drafts_when_neither_pays() -> None:
    chain = ChainDrafter(SuffixDrafter(), None)
    chain.begin([1, 2, 3], None)
    none = chain.draft([1, 2, 3, 4], 8, GREEDY, RNG, controller(None))
    assert none.tokens == [] and none.kind == "" and none.match_len == 0
    # a two-token match (short bucket, 40% prior) is not worth a batched pass on a CPU
    d = chain.draft([1, 2, 3, 4, 9, 1, 2], 8, GREEDY, RNG, controller(None))
    assert d.tokens == [] and d.match_len == 2


def test_suffix_length_follows_earned_acceptance() -> None:
    ctrl = controller(None)
    full = [1.0] * 8
    first = ctrl.suffix_k(full, 30, 8)  # long matches: the 95% prior
    assert 1 <= first < 8
    for _ in range(10):
        cost = verify_cost(first + 1)
        ctrl.record(drafted=first, accepted=first, draft_s=0.0, verify_s=cost, round_s=cost,
                    kind="suffix", match_len=30)
    assert ctrl.suffix_k(full, 30, 8) == 8  # all accepted: the whole proposal is worth it
    for _ in range(30):  # then long matches turn out to be wrong after 1 token
        ctrl.record(drafted=8, accepted=1, draft_s=0.0, verify_s=0.5, round_s=0.5,
                    kind="suffix", match_len=30)
    assert ctrl.suffix_acceptance(30) < 0.7
    assert ctrl.suffix_k(full, 30, 8) < first
    # the other buckets and the model's acceptance are untouched
    assert ctrl.suffix_acceptance(5) == DraftLengthController(draft_max=8).suffix_acceptance(5)
    assert ctrl._raw_succ == ctrl._raw_fail == 0 and ctrl.t_draft is None


def test_support_shortens_a_proposal() -> None:
    ctrl = controller(None)
    for _ in range(10):
        ctrl.record(drafted=5, accepted=5, draft_s=0.0, verify_s=0.3, round_s=0.3,
                    kind="suffix", match_len=20)
    assert ctrl.suffix_k([1.0] * 5, 20, 8) == 5
    assert ctrl.suffix_k([1.0, 1.0, 0.5, 0.5, 0.5], 20, 8) == 2


def test_suffix_rounds_count_as_model_off_time() -> None:
    ctrl = controller()
    ctrl.last_k = 0
    ctrl.record(drafted=4, accepted=4, draft_s=0.0, verify_s=0.3, round_s=0.3,
                kind="suffix", match_len=20)
    assert ctrl._off_s == 0.3
    assert suffix_bucket(20) == 3 and suffix_bucket(1) == 0


def test_a_better_model_wins_over_a_paying_suffix_proposal() -> None:
    """On a pair where the model drafts at full acceptance for little, a shaky suffix proposal
    must not displace it."""
    model = ScriptedModel()
    chain = ChainDrafter(SuffixDrafter(), model)
    ctrl = controller(t_draft=0.001)
    ctrl._explored = 3
    ctrl._succ, ctrl._fail = 50.0, 0.1  # the model is nearly always right
    text = [1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5]  # a 5-token match
    proposal = SuffixDrafter()
    proposal.begin(text)
    p = proposal.propose(text, 8)
    assert ctrl.suffix_plan(p.support, p.match_len, 8)[0] > 0  # it alone would pay
    chain.begin(text, None)
    d = chain.draft(text, 8, GREEDY, RNG, ctrl)
    assert d.kind == "model" and model.calls == 1
