"""Adaptive draft length for the draft model: pick k (tokens drafted per target pass) from
measured costs.

Model: with per-token acceptance a, a pass over k drafts yields (1 - a^(k+1)) / (1 - a) tokens
and costs k·c + b(k+1) + o target tokens, where c is a drafted token's cost, b(n) a target pass
over n tokens and o the per-round overhead, all in units of one target token (costs.CostModel:
ratios hold while a busy machine slows everything). The controller picks the k with the best
predicted tokens per target-token time; k = 0 is the target alone, so when the draft does not
pay, speculation switches off and is only probed now and then.

A probe is not free: the draft must first read everything written while it was off (its catch-up,
hundreds of tokens after a long reply). Probes are therefore paid from a time budget: one happens
only when its predicted cost, catch-up included, is at most PROBE_SHARE of the time spent with
speculation off since the last one (HOPELESS_SHARE when not even a perfect draft would pay).

The suffix drafter's own planning lives with it (suffix.py); both read the same CostModel. What
the controller learned can be saved and restored (snapshot/restore; learned.py stores it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from specchat.engine.speculative.costs import CostModel, non_negative

ACCEPT_DECAY = 0.97  # how fast old acceptance evidence fades (per round)
PROBE_SHARE = 0.02  # most of the off time a probe may cost
HOPELESS_SHARE = 0.005  # ...when the draft cannot pay even at full acceptance (costs may drift)
# Speculate only when the model predicts a clear gain: timings are noisy, and a borderline
# draft length that loses on this hardware costs more than the small win it might bring.
MARGIN = 1.05
NEIGHBOUR_EVERY = 8  # rounds between tries of a neighbouring draft length (keeps costs fresh)
SNAPSHOT_VERSION = 2


@dataclass
class DraftLengthController:
    draft_max: int
    adaptive: bool = True
    draft_min: int = 0
    # Acceptance a drafter of this kind usually reaches: no exploration unless it would pay at
    # this rate (1.0: explore whenever a perfect draft would pay).
    typical_acceptance: float = 1.0
    costs: CostModel = field(default_factory=CostModel)  # shared with the suffix drafter
    _succ: float = 0.7  # decayed accepted count (prior: a = 0.7, worth one round of evidence)
    _fail: float = 0.3  # decayed rejection count
    _explored: int = 0
    _since_neighbour: int = 0
    _neighbour_up: bool = True
    _off_s: float = 0.0  # time with speculation off since the last probe
    _raw_succ: int = 0  # accepted drafts, never decayed (exploration decisions)
    _raw_fail: int = 0  # rounds with a rejection, never decayed
    last_k: int = 0
    switched_off: bool = False

    @property
    def acceptance(self) -> float:
        return self._succ / (self._succ + self._fail)

    @property
    def c_draft(self) -> float | None:
        """A drafted token's cost in target tokens (None: not measured)."""
        return self.costs.draft.estimate

    def next_k(self, limit: int, lag: Callable[[], int] | None = None) -> int:
        """Draft length for the next round, at most `limit` (context room, max_tokens).
        `lag` says how many tokens the drafter must read before it can draft (asked only when
        a probe is being considered)."""
        limit = min(limit, self.draft_max)
        if not self.adaptive or limit <= 0:
            k = max(limit, 0)
        elif self.costs.t1 is None:
            k = 0  # measure the target alone first: it is the baseline to beat
        elif self._explored < 3:
            # Explore cheaply first (k=2), unless not even a perfect draft would pay. Then try
            # the long and a middle length, so verify costs are interpolated, not extrapolated;
            # stop as soon as even an optimistic reading of the acceptance seen so far predicts
            # no gain.
            if self._not_worth_exploring(limit):
                self._explored = 3
                k = 0
            else:
                plan = (min(2, self.draft_max), self.draft_max, max(1, self.draft_max // 2))
                k = min(limit, plan[min(self._explored, 2)])
                self._explored += 1
        else:
            k = self.best_k(limit)
            if k == 0:
                if self._probe_due(limit, lag):  # look again, cheaply
                    self._off_s = 0.0
                    k = min(limit, 2)
            else:
                self._since_neighbour += 1
                if self._since_neighbour >= NEIGHBOUR_EVERY:
                    self._since_neighbour = 0
                    step = 2 if self._neighbour_up else -2
                    self._neighbour_up = not self._neighbour_up
                    k = min(max(k + step, 1), limit)
        if 0 < k < self.draft_min:
            k = 0
        self.switched_off = self.adaptive and k == 0 and self.c_draft is not None
        self.last_k = k
        return k

    def _not_worth_exploring(self, limit: int) -> bool:
        if self.hopeless(limit):
            return True
        if self._explored == 0:  # nothing seen yet: what this kind of drafter usually gets
            return self.c_draft is not None and not self.best_k(limit, self.typical_acceptance)
        return not self.best_k(limit, alpha=self.optimistic_acceptance)

    @property
    def optimistic_acceptance(self) -> float:
        """Acceptance seen so far plus two imagined successes: one rejection in a short
        exploration is weak evidence, but enough to stop where only near-full acceptance pays."""
        return (self._raw_succ + 2) / (self._raw_succ + self._raw_fail + 2)

    def expects_to_draft(self) -> bool:
        """Whether the next rounds will likely draft (so the drafter should read the prompt
        now, with the target's, rather than inside the first round)."""
        if self.draft_max <= 0 or not self.adaptive:
            return self.draft_max > 0
        if self.costs.t1 is None:
            return False
        if self._explored < 3:
            return not self._not_worth_exploring(self.draft_max)
        return self.best_k(self.draft_max) > 0

    def hopeless(self, limit: int) -> bool:
        """True when the measured costs say no draft length pays even at full acceptance."""
        return self.c_draft is not None and self.best_k(limit, alpha=1.0) == 0

    def probe_cost(self, k: int, lag: int) -> float:
        """Predicted extra seconds of one probe round of k drafts after `lag` tokens of
        catch-up."""
        c = self.c_draft or 0.0
        extra = k * c + self.costs.verify_ratio(k + 1) - 1.0
        catchup = self.costs.catchup.estimate
        return (max(extra, 0.0) + lag * (c if catchup is None else catchup)) * (
            self.costs.t1 or 0.0
        )

    def _probe_due(self, limit: int, lag: Callable[[], int] | None) -> bool:
        share = HOPELESS_SHARE if self.hopeless(limit) else PROBE_SHARE
        k = min(limit, 2)
        budget = self._off_s * share
        if budget < self.probe_cost(k, 0):
            return False  # cheap test first: the catch-up only adds to this
        return budget >= self.probe_cost(k, lag() if lag is not None else 0)

    def reason(self) -> str:
        """Why speculation is off, in numbers a user can check."""
        c = self.c_draft
        if not c:
            return "the draft does not pay"
        costs = (
            f"a drafted token costs {c:.0%} of a target token and checking 2 "
            f"drafts {self.costs.verify_ratio(3):.1f}× one"
        )
        if self.hopeless(self.draft_max):
            return f"not even a perfect draft pays on this hardware ({costs})"
        if self._raw_succ + self._raw_fail == 0:  # nothing drafted yet
            return f"the draft is not expected to pay on this hardware ({costs})"
        return f"at {self.acceptance:.0%} acceptance the draft does not pay ({costs})"

    def learn_from(self, old: DraftLengthController) -> None:
        """Keep what an earlier controller of the same drafter learned (settings changed
        between replies): acceptance, what was explored, the probe budget."""
        self._succ, self._fail = old._succ, old._fail
        self._raw_succ, self._raw_fail = old._raw_succ, old._raw_fail
        self._explored = old._explored  # what was explored need not be explored again
        self._off_s = old._off_s  # the probe budget carries over

    def predicted_rate(self, k: int, alpha: float | None = None) -> float:
        """Tokens per target-token time at draft length k (k = 0: the target alone)."""
        a = min(self.acceptance if alpha is None else alpha, 0.999)
        tokens = (1 - a ** (k + 1)) / (1 - a)
        cost = k * (self.c_draft or 0.0) + self.costs.verify_ratio(k + 1) + self.overhead
        return tokens / cost if cost > 0 else 0.0

    @property
    def overhead(self) -> float:
        return self.costs.overhead.estimate or 0.0

    def best_k(self, limit: int, alpha: float | None = None) -> int:
        """The draft length with the best predicted rate (at `alpha`, default the measured
        acceptance); 0 unless it beats the target alone by MARGIN."""
        alone = self.predicted_rate(0, alpha)
        rates = {k: self.predicted_rate(k, alpha) for k in range(1, limit + 1)}
        best = max(rates, key=lambda k: (rates[k], -k), default=0)
        return best if best and rates[best] > MARGIN * alone else 0

    def expected_rate(self, limit: int) -> float:
        """Predicted tokens per target-token time of the draft model at its best length, once
        explored (0 when it does not pay or is still being explored)."""
        if self.c_draft is None or self.costs.t1 is None or self._explored < 3:
            return 0.0
        k = self.best_k(min(limit, self.draft_max))
        return self.predicted_rate(k) if k else 0.0

    def record(
        self,
        drafted: int,
        accepted: int,
        draft_s: float,
        round_s: float,
        catchup_s: float = 0.0,
        catchup_tokens: int = 0,
    ) -> None:
        """Feed back one round in which the draft model drafted `drafted` tokens (0: it did not
        draft), of which `accepted` were kept; its drafting and catch-up times. The target's
        pass is the cost model's to record."""
        costs = self.costs
        if catchup_tokens > 2:
            costs.record_relative(costs.catchup, catchup_s / catchup_tokens)
        if drafted == 0:
            if self.last_k == 0:
                self._off_s += round_s
            return
        costs.record_relative(costs.draft, draft_s / drafted)
        self._succ = self._succ * ACCEPT_DECAY + accepted
        self._fail = self._fail * ACCEPT_DECAY + (1 if accepted < drafted else 0)
        self._raw_succ += accepted
        self._raw_fail += 1 if accepted < drafted else 0

    def idle(self, round_s: float) -> None:
        """Another drafter drafted this round: the model was off, its probe budget grows."""
        if self.last_k == 0:
            self._off_s += round_s

    # ---- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """What this controller learned, as plain JSON-able data (costs apart)."""
        return {
            "version": SNAPSHOT_VERSION,
            "succ": self._succ,
            "fail": self._fail,
            "raw_succ": self._raw_succ,
            "raw_fail": self._raw_fail,
            "explored": self._explored,
        }

    def restore(self, data: Mapping[str, object]) -> bool:
        """Start from a snapshot. False, and nothing changed, when it is not a snapshot this
        version understands."""
        try:
            state = _parse_snapshot(data)
        except (KeyError, TypeError, ValueError):
            return False
        self._succ, self._fail = state["succ"], state["fail"]
        self._raw_succ, self._raw_fail = state["raw_succ"], state["raw_fail"]
        self._explored = state["explored"]
        return True


def _parse_snapshot(data: Mapping[str, object]) -> dict[str, Any]:
    if data.get("version") != SNAPSHOT_VERSION:
        raise ValueError("another snapshot version")

    return {
        "succ": non_negative(data["succ"]),
        "fail": non_negative(data["fail"]),
        "raw_succ": int(non_negative(data["raw_succ"])),
        "raw_fail": int(non_negative(data["raw_fail"])),
        "explored": min(int(non_negative(data["explored"])), 3),
    }
