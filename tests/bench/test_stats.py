"""Benchmark arithmetic: predicted speedup, acceptance estimates, ratios pair by pair."""

from __future__ import annotations

import math

import pytest

from specchat.bench.stats import (
    acceptance_by_position,
    alpha_from_passes,
    alpha_from_rate,
    best_predicted,
    expected_tokens_per_pass,
    greedy_identity,
    pair_ratios,
    predicted_speedup,
    spread,
)

# b(n) as measured on the 2-core CPU in issue 2: 2.5x for 3 tokens, 3.5x for 5, 4.5x for 7.
B = {1: 1.0, 2: 1.8, 3: 2.5, 4: 3.0, 5: 3.5, 6: 4.0, 7: 4.5, 8: 5.0, 9: 5.5}


def test_expected_tokens_per_pass() -> None:
    assert expected_tokens_per_pass(1.0, 6) == 7.0
    assert expected_tokens_per_pass(0.0, 6) == 1.0
    assert expected_tokens_per_pass(0.5, 2) == pytest.approx(1 + 0.5 + 0.25)


def test_predicted_speedup_formula() -> None:
    a, k, c = 0.8, 4, 0.1
    want = (1 - a ** (k + 1)) / ((1 - a) * (k * c + B[k + 1]))
    assert predicted_speedup(a, k, c, B) == pytest.approx(want)
    # full agreement: (k+1) tokens per pass for k*c + b(k+1) target-token costs
    assert predicted_speedup(1.0, 6, 0.0934, B) == pytest.approx(7 / (6 * 0.0934 + 4.5))
    assert predicted_speedup(0.3, 0, 0.1, B) == 1.0


def test_predicted_speedup_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        predicted_speedup(1.2, 2, 0.1, B)
    with pytest.raises(KeyError):
        predicted_speedup(0.9, 20, 0.1, B)


def test_best_predicted_switches_off_when_nothing_pays() -> None:
    k, s = best_predicted(1.0, 0.1, B)
    assert k == 8 and s == pytest.approx(9 / (0.8 + 5.5))
    assert best_predicted(0.2, 0.1, B) == (0, 1.0)


def test_alpha_from_passes_is_the_geometric_mle() -> None:
    # 4+2+0 accepted; two passes stopped at a rejection, one drafted 4 and took all 4
    assert alpha_from_passes([(4, 4), (4, 2), (4, 0)]) == pytest.approx(6 / 8)
    # a short draft (early stop) accepted in full is not a rejection
    assert alpha_from_passes([(2, 2), (4, 4)]) == 1.0
    assert alpha_from_passes([]) is None


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("k", [1, 4, 8])
def test_alpha_from_rate_inverts_the_expected_rate(alpha: float, k: int) -> None:
    rate = (expected_tokens_per_pass(alpha, k) - 1) / k
    assert alpha_from_rate(rate, k) == pytest.approx(alpha, abs=1e-9)
    assert alpha_from_rate(1.0, k) == 1.0 and alpha_from_rate(0.0, k) == 0.0


def test_acceptance_by_position() -> None:
    passes = [(3, 3), (3, 1), (3, 0), (2, 2)]
    # position 1 reached by all 4, accepted by 3; position 2 reached by 3 (d>=2, a>=1), accepted
    # by 2; position 3 reached by 1 (the pass that took all 3), accepted by 1.
    assert acceptance_by_position(passes, 3) == [0.75, pytest.approx(2 / 3), 1.0]
    assert acceptance_by_position([], 2) == [None, None]


def test_pair_ratios_are_not_the_ratio_of_medians() -> None:
    base = {(0, "a"): 10.0, (0, "b"): 20.0, (1, "a"): 12.0, (1, "b"): 30.0}
    mode = {(0, "a"): 15.0, (0, "b"): 22.0, (1, "a"): 18.0, (1, "b"): 33.0, (2, "x"): 9.0}
    ratios = pair_ratios(base, mode)
    assert sorted(ratios) == pytest.approx(sorted([1.5, 1.1, 1.5, 1.1]))
    med = spread(ratios)
    assert med is not None and med.median == pytest.approx(1.3)
    ratio_of_medians = spread(list(mode.values())[:4]).median / spread(list(base.values())).median  # type: ignore[union-attr]
    assert not math.isclose(med.median, ratio_of_medians)


def test_spread() -> None:
    s = spread([3.0, 1.0, 2.0, 10.0])
    assert s is not None and (s.median, s.low, s.high, s.n) == (2.5, 1.0, 10.0, 4)
    assert spread([]) is None
    assert s.to_dict() == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}


def test_greedy_identity() -> None:
    ref = {(0, "a"): [1, 2, 3], (0, "b"): [4, 5]}
    runs = {(0, "a"): (1, 2, 3), (0, "b"): (4, 6), (0, "c"): (7,)}
    assert greedy_identity(ref, runs) == (1, 2)
