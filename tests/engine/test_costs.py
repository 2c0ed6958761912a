"""The cost model (costs.CostModel): robust to a busy minute, to poisoned or stale learned costs."""

from __future__ import annotations

import json
import time

import pytest

from specchat.engine.speculative import costs as costs_module
from specchat.engine.speculative.costs import PRIOR_SLOPE, WINDOW, CostModel


def quiet() -> CostModel:
    """A quiet 2-core CPU: 40 ms a token, a pass over n tokens 1 + 0.4 (n - 1) tokens."""
    c = CostModel()
    for _ in range(5):
        c.record_pass(1, 0.040)
        for n in (3, 9):
            c.record_pass(n, 0.040 * (1 + 0.4 * (n - 1)))
    return c


def test_a_busy_machine_slows_every_pass_alike_and_the_ratios_hold() -> None:
    c = quiet()
    before = c.verify_ratio(9)
    for _ in range(WINDOW):  # three CPU hogs: everything takes ten times as long
        c.record_pass(1, 0.400)
        c.record_pass(9, 0.400 * 4.2)
    assert c.t1 == pytest.approx(0.400)
    assert c.verify_ratio(9) == pytest.approx(before)


def test_one_busy_moment_moves_an_estimate_by_one_rank_not_by_its_size() -> None:
    c = quiet()
    c.record_pass(3, 1.24)  # one 3-token pass in a busy second (0.072 s when quiet)
    assert c.verify_ratio(3) == pytest.approx(1.8)
    c.record_pass(1, 3.5)  # a one-token pass stalled
    assert c.t1 == pytest.approx(0.040)


def test_samples_are_capped_by_what_batching_can_do() -> None:
    c = CostModel()
    c.record_pass(1, 0.040)
    c.record_pass(3, 10.0)  # dearer than three one-token passes: the machine, not the model
    c.record_pass(5, 0.001)  # cheaper than half of one: timer noise
    assert c.ratio[3].values == [3.0] and c.ratio[5].values == [0.5]


def test_widths_are_compared_with_this_runs_pace_only() -> None:
    c = CostModel()
    c.seed({1: 0.040, 3: 0.080}, None, None)  # load time (or an earlier run): stale
    c.record_pass(3, 0.5)  # no fresh one-token pass yet to compare with: not recorded
    assert c.ratio[3].values == [2.0]
    c.record_pass(1, 0.050)
    c.record_pass(3, 0.090)
    assert c.ratio[3].values == [pytest.approx(1.8)] and c.ratio[3].fresh


def test_a_poisoned_snapshot_costs_one_probe_not_drafting_for_good() -> None:
    """learned.json from a busy minute: a 3-token pass at 12x a token (capped at 3x), 9 at 9x.
    Restored, those widths are stale: never dearer than the prior; the first fresh sample of
    each replaces the stale ones."""
    poisoned = CostModel()
    poisoned.record_pass(1, 0.1)
    for _ in range(WINDOW):
        poisoned.record_pass(3, 1.24)
        poisoned.record_pass(9, 0.9)
    data = json.loads(json.dumps(poisoned.snapshot()))
    c = CostModel()
    assert c.restore(data)
    assert c.verify_ratio(3) == pytest.approx(1 + PRIOR_SLOPE * 2)
    assert c.verify_ratio(9) == pytest.approx(1 + PRIOR_SLOPE * 8)
    c.record_pass(1, 0.040)  # this run, quiet
    c.record_pass(9, 0.040 * 4.2)
    assert c.verify_ratio(9) == pytest.approx(4.2) and c.ratio[9].values == [pytest.approx(4.2)]


def test_costs_learned_long_ago_are_not_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    data = quiet().snapshot()
    later = time.time() + 30 * 24 * 3600
    monkeypatch.setattr(costs_module.time, "time", lambda: later)
    assert not CostModel().restore(data)


@pytest.mark.parametrize("bad", [
    None, [], {}, {"saved": "now"}, {"saved": 1e9, "one": "fast", "ratio": {}, "draft": [],
                                     "catchup": [], "overhead": []},
    {"saved": time.time(), "one": [0.1], "ratio": {"x": [1.0]}, "draft": [], "catchup": [],
     "overhead": []},
    {"saved": time.time(), "one": [float("nan")], "ratio": {}, "draft": [], "catchup": [],
     "overhead": []},
    {"saved": time.time(), "one": [-1.0], "ratio": {}, "draft": [], "catchup": [],
     "overhead": []},
])
def test_a_bad_snapshot_changes_nothing(bad: object) -> None:
    c = quiet()
    before = c.snapshot()
    assert not c.restore(bad)
    after = c.snapshot()
    assert {k: v for k, v in after.items() if k != "saved"} == {
        k: v for k, v in before.items() if k != "saved"}


def test_unmeasured_widths_follow_the_line_through_the_measured_ones() -> None:
    c = quiet()
    assert c.verify_ratio(17) == pytest.approx(1 + 0.4 * 16, rel=0.01)
    assert c.verify_ratio(1) == 1.0
    empty = CostModel()
    assert empty.verify_ratio(5) == pytest.approx(1 + PRIOR_SLOPE * 4)


def test_the_line_follows_every_new_sample_and_every_replaced_width() -> None:
    c = quiet()
    before = c.verify_ratio(6)
    for _ in range(WINDOW):  # width 9 became twice as dear: the line through it steepens
        c.record_pass(9, 0.040 * 2 * (1 + 0.4 * 8))
    assert c.verify_ratio(6) > before
    c.ratio = {2: costs_module.Samples([1.2])}  # a dict replaced wholesale is seen too
    assert c.verify_ratio(6, smooth=True) == pytest.approx(1.0 + 0.2 * 5)
