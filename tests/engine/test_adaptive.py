"""The draft model's length controller (adaptive.py), on scripted costs."""

from __future__ import annotations

import pytest

from specchat.engine.speculative.adaptive import HOPELESS_SHARE, PROBE_SHARE, DraftLengthController
from specchat.engine.speculative.costs import CostModel


def play(c: DraftLengthController, k: int, accepted: int, draft_s: float, verify_s: float,
         round_s: float, catchup_s: float = 0.0, catchup_tokens: int = 0) -> None:
    """One round as the engine records it: the target pass to the cost model, the rest to the
    controller."""
    c.costs.record_pass(k + 1, verify_s)
    c.record(drafted=k, accepted=accepted, draft_s=draft_s, round_s=round_s,
             catchup_s=catchup_s, catchup_tokens=catchup_tokens)


def test_controller_switches_off_when_draft_does_not_pay():
    c = DraftLengthController(draft_max=8)
    assert c.next_k(8) == 0  # measures the target alone first
    play(c, 0, 0, 0, 0.010, 0.010)
    k = c.next_k(8)
    assert k > 0  # then explores
    for _ in range(30):  # expensive draft, poor agreement, verify cost grows with batch
        play(c, k, k // 3, 0.004 * k, 0.010 * (1 + 0.5 * k), 0.004 * k + 0.010 * (1 + 0.5 * k))
        k = c.next_k(8) or 1
    assert c.best_k(8) == 0
    assert c.next_k(8) == 0 and c.switched_off


def test_controller_drafts_long_when_draft_is_cheap_and_right():
    c = DraftLengthController(draft_max=8)
    play(c, 0, 0, 0, 0.010, 0.010)
    for _ in range(40):
        k = c.next_k(8)
        play(c, k, k, 0.0005 * k, 0.010 + 0.001 * k, 0.0105 + 0.0015 * k)
    assert c.next_k(8) >= 6


def _seeded(t_draft: float, draft_max: int = 6, typical: float = 1.0,
            t_verify: dict[int, float] | None = None) -> DraftLengthController:
    """Costs as measured at load time: a 10 ms target token, batches growing 0.5 token/token."""
    costs = CostModel()
    costs.seed(t_verify or {1: 0.010, 3: 0.020, 7: 0.040}, t_draft=t_draft, t_catchup=0.002)
    return DraftLengthController(draft_max=draft_max, typical_acceptance=typical, costs=costs)


def test_controller_stops_exploring_once_even_optimism_predicts_no_gain():
    # pays only at high acceptance (at 100%: 1.2x at k=6); not hopeless, so it explores
    c = _seeded(t_draft=0.003)
    assert not c.hopeless(6) and c.expects_to_draft()
    assert c.next_k(6) == 2
    play(c, 2, 2, 0.006, 0.020, 0.026)
    assert c.next_k(6) == 6  # all accepted: keep exploring
    play(c, 6, 1, 0.018, 0.040, 0.058)
    assert c.next_k(6) == 0 and c.switched_off  # a rejection early on: stop
    assert not c.expects_to_draft()
    assert "acceptance" in c.reason()


def test_controller_explores_only_where_the_drafters_typical_acceptance_pays():
    """A cross-vocabulary draft (typically ~50% accepted) that would pay only near 100% is not
    explored at all: exploring would cost its whole prompt evaluation."""
    c = _seeded(t_draft=0.003, typical=0.6)
    assert not c.hopeless(6) and not c.expects_to_draft()
    assert c.next_k(6) == 0 and "not expected to pay" in c.reason()
    gpu = _seeded(t_draft=0.001, typical=0.6, t_verify={1: 0.010, 3: 0.011, 7: 0.013})
    assert gpu.expects_to_draft() and gpu.next_k(6) == 2


def test_controller_keeps_exploring_a_draft_that_agrees():
    c = _seeded(t_draft=0.003)
    ks = []
    for _ in range(12):
        k = c.next_k(6)
        ks.append(k)
        play(c, k, k, 0.003 * k, 0.010 + 0.005 * k, 0.010 + 0.008 * k)
    assert ks[:3] == [2, 6, 3] and min(ks[3:]) >= 1  # explored all three, then kept drafting


def test_controller_probes_only_within_its_time_budget():
    c = _seeded(t_draft=0.003)
    assert c.next_k(6) == 2  # explores; the draft is rejected at once: speculation goes off
    play(c, 2, 0, 0.006, 0.020, 0.026)
    asked: list[int] = []

    def lag() -> int:
        asked.append(1)
        return 100  # 100 tokens to catch up: 0.2 s at 2 ms each

    probe = c.probe_cost(2, 100)
    assert probe == pytest.approx(2 * 0.003 + 0.020 - 0.010 + 100 * 0.002)
    rounds = 0
    while c.next_k(6, lag) == 0:
        play(c, 0, 0, 0, 0.010, 0.010)
        rounds += 1
        assert rounds < 10_000
    # the probe came once the off time paid for it at PROBE_SHARE, not before
    assert rounds == pytest.approx(probe / (0.010 * PROBE_SHARE), abs=1.5)
    # the lag (costly to work out for some drafters) was asked only once the cheap test passed
    assert 0 < len(asked) < rounds
    # the budget starts again after a probe
    play(c, 2, 0, 0.006, 0.020, 0.026)
    assert c.next_k(6, lag) == 0


def test_controller_probes_a_hopeless_draft_even_more_rarely():
    c = _seeded(t_draft=0.012)  # costs more than the target: not even a perfect draft pays
    assert c.hopeless(6) and "not even a perfect draft" in c.reason()
    rounds = 0
    while c.next_k(6, lambda: 0) == 0:
        play(c, 0, 0, 0, 0.010, 0.010)
        rounds += 1
    assert rounds == pytest.approx(c.probe_cost(2, 0) / (0.010 * HOPELESS_SHARE), abs=1.5)


def test_controller_learns_catch_up_cost_from_long_catch_ups_only():
    c = _seeded(t_draft=0.006)
    play(c, 0, 0, 0, 0.010, 0.010)  # this run's pace: 10 ms a target token
    play(c, 2, 2, 0.01, 0.02, 0.03, catchup_s=0.5, catchup_tokens=100)
    assert c.costs.catchup.estimate == pytest.approx(0.5)  # 5 ms a token: half a target token
    play(c, 2, 2, 0.01, 0.02, 0.03, catchup_s=0.5, catchup_tokens=2)  # steady: part of drafting
    assert c.costs.catchup.values == [pytest.approx(0.5)]


def test_controller_fixed_length_when_not_adaptive():
    c = DraftLengthController(draft_max=5, adaptive=False)
    assert c.next_k(8) == 5 and c.next_k(3) == 3


def test_controller_switches_off_a_draft_dearer_than_the_target_within_a_few_rounds():
    """What `ask` with a ~50x heavier draft meets (tests/engine/test_ask.py shows the notice's
    place): even a draft the target always agrees with does not pay, and the controller says so
    after the first tries."""
    c = DraftLengthController(draft_max=8)
    play(c, 0, 0, 0, 0.001, 0.001)  # the target alone: 1 ms a token
    rounds = 0
    while (k := c.next_k(8)) and rounds < 12:
        play(c, k, k, 0.050 * k, 0.001 * (1 + 0.2 * k), 0.050 * k + 0.001 * (1 + 0.2 * k))
        rounds += 1
    assert c.switched_off and c.next_k(8) == 0 and rounds <= 3, rounds
    assert c.reason().startswith("not even a perfect draft pays on this hardware")
