"""Adaptive draft length: pick k (tokens drafted per target pass) from measured costs.

Model: with per-token acceptance a, a pass over k drafts yields (1 - a^(k+1)) / (1 - a) tokens
and costs k·t_draft + t_verify(k+1). Every input is measured online: t_draft per drafted token,
t_verify for each batch size seen (a straight line through them predicts the rest), and a. The
controller picks the k with the best predicted tokens/second; k = 0 is the target alone, so when
the draft does not pay, speculation switches off and is only probed now and then.

A probe is not free: the draft must first read everything written while it was off (its catch-up,
hundreds of tokens after a long reply). Probes are therefore paid from a time budget: one happens
only when its predicted cost, catch-up included, is at most PROBE_SHARE of the time spent with
speculation off since the last one (HOPELESS_SHARE when not even a perfect draft would pay).

Suffix drafts (suffix.py) cost nothing to make, so only their verification is weighed: each
proposal's length is cut to what pays at the acceptance its match length has earned (counted per
match-length bucket, starting from SUFFIX_PRIOR) times the support of each proposed token. The
controller keeps each drafter's own acceptance; target costs are shared. Everything it learned
can be saved and restored (snapshot/restore; learned.py stores it between runs)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EMA = 0.25  # weight of a new timing sample
ACCEPT_DECAY = 0.97  # how fast old acceptance evidence fades (per round)
PROBE_SHARE = 0.02  # most of the off time a probe may cost
HOPELESS_SHARE = 0.005  # ...when the draft cannot pay even at full acceptance (costs may drift)
# Speculate only when the model predicts a clear gain: timings are noisy, and a borderline
# draft length that loses on this hardware costs more than the small win it might bring.
MARGIN = 1.05
OUTLIER = 2.0  # a timing sample above this multiple of the estimate counts as this multiple
NEIGHBOUR_EVERY = 8  # rounds between tries of a neighbouring draft length (keeps costs fresh)
# Suffix drafts: acceptance per match-length bucket (<4, 4-7, 8-15, 16+ tokens matched), starting
# from a prior worth SUFFIX_PRIOR_WEIGHT rounds: a long match in a conversation is usually copied.
SUFFIX_BUCKETS = (4, 8, 16)
SUFFIX_PRIOR = (0.4, 0.85, 0.92, 0.95)
SUFFIX_PRIOR_WEIGHT = 2.0
SNAPSHOT_VERSION = 1


@dataclass
class DraftLengthController:
    draft_max: int
    adaptive: bool = True
    draft_min: int = 0
    # Acceptance a drafter of this kind usually reaches: no exploration unless it would pay at
    # this rate (1.0: explore whenever a perfect draft would pay).
    typical_acceptance: float = 1.0
    t_draft: float | None = None  # seconds per drafted token
    t_verify: dict[int, float] = field(default_factory=dict)  # batch size -> seconds
    t_catchup: float | None = None  # seconds per token the draft reads to catch up (batched)
    overhead: float = 0.0  # per-round time outside drafting and verification
    _succ: float = 0.7  # decayed accepted count (prior: a = 0.7, worth one round of evidence)
    _fail: float = 0.3  # decayed rejection count
    _rounds: int = 0
    _explored: int = 0
    _since_neighbour: int = 0
    _neighbour_up: bool = True
    _off_s: float = 0.0  # time with speculation off since the last probe
    _raw_succ: int = 0  # accepted drafts, never decayed (exploration decisions)
    _raw_fail: int = 0  # rounds with a rejection, never decayed
    last_k: int = 0
    switched_off: bool = False
    # suffix drafts, per match-length bucket: decayed accepted tokens and rounds with a rejection
    suffix_succ: list[float] = field(default_factory=lambda: [0.0] * len(SUFFIX_PRIOR))
    suffix_fail: list[float] = field(default_factory=lambda: [0.0] * len(SUFFIX_PRIOR))
    # what suffix proposals did, per bucket (reporting only, not persisted): proposals, tokens
    # proposed, proposals verified, tokens verified, tokens accepted
    suffix_log: list[list[int]] = field(default_factory=lambda: [[0] * 5 for _ in SUFFIX_PRIOR])

    @property
    def acceptance(self) -> float:
        return self._succ / (self._succ + self._fail)

    def next_k(self, limit: int, lag: Callable[[], int] | None = None) -> int:
        """Draft length for the next round, at most `limit` (context room, max_tokens).
        `lag` says how many tokens the drafter must read before it can draft (asked only when
        a probe is being considered)."""
        limit = min(limit, self.draft_max)
        if not self.adaptive or limit <= 0:
            k = max(limit, 0)
        elif 1 not in self.t_verify:
            k = 0  # measure the target alone first: it is the baseline to beat
        elif self._explored < 3 or len(self.t_verify) < 2:
            # Explore cheaply first (k=2), unless not even a perfect draft would pay (costs
            # measured at load time, then in the loop). Then try the long and a middle length,
            # so verify costs are interpolated, not extrapolated; stop as soon as even an
            # optimistic reading of the acceptance seen so far predicts no gain.
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
        self.switched_off = self.adaptive and k == 0 and self.t_draft is not None
        self.last_k = k
        return k

    def _not_worth_exploring(self, limit: int) -> bool:
        if self.hopeless(limit):
            return True
        if self._explored == 0:  # nothing seen yet: what this kind of drafter usually gets
            return self.t_draft is not None and not self.best_k(limit, self.typical_acceptance)
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
        if 1 not in self.t_verify:
            return False
        if self._explored < 3:
            return not self._not_worth_exploring(self.draft_max)
        return self.best_k(self.draft_max) > 0

    def hopeless(self, limit: int) -> bool:
        """True when the measured costs say no draft length pays even at full acceptance."""
        return self.t_draft is not None and self.best_k(limit, alpha=1.0) == 0

    def probe_cost(self, k: int, lag: int) -> float:
        """Predicted extra time of one probe round of k drafts after `lag` tokens of catch-up."""
        t_draft = self.t_draft or 0.0
        extra = k * t_draft + self.verify_cost(k + 1) - self.verify_cost(1)
        return max(extra, 0.0) + lag * (self.t_catchup or t_draft)

    def _probe_due(self, limit: int, lag: Callable[[], int] | None) -> bool:
        share = HOPELESS_SHARE if self.hopeless(limit) else PROBE_SHARE
        k = min(limit, 2)
        budget = self._off_s * share
        if budget < self.probe_cost(k, 0):
            return False  # cheap test first: the catch-up only adds to this
        return budget >= self.probe_cost(k, lag() if lag is not None else 0)

    def seed(
        self,
        t_verify: dict[int, float],
        t_draft: float | None,
        t_catchup: float | None,
    ) -> None:
        """Start from costs measured at load time (costs.measure_load_costs); the loop's own
        measurements refine them."""
        for n, t in t_verify.items():
            self.t_verify.setdefault(n, t)
        if self.t_draft is None:
            self.t_draft = t_draft
        if self.t_catchup is None:
            self.t_catchup = t_catchup

    def reason(self) -> str:
        """Why speculation is off, in numbers a user can check."""
        one = self.verify_cost(1)
        if not self.t_draft or one <= 0:
            return "the draft does not pay"
        costs = (
            f"a drafted token costs {self.t_draft / one:.0%} of a target token and checking 2 "
            f"drafts {self.verify_cost(3) / one:.1f}× one"
        )
        if self.hopeless(self.draft_max):
            return f"not even a perfect draft pays on this hardware ({costs})"
        if self._raw_succ + self._raw_fail == 0:  # nothing drafted yet
            return f"the draft is not expected to pay on this hardware ({costs})"
        return f"at {self.acceptance:.0%} acceptance the draft does not pay ({costs})"

    def learn_from(self, old: DraftLengthController, same_drafter: bool) -> None:
        """Keep what an earlier controller measured: target costs always, draft costs and
        acceptance when the drafter is the same (settings changed between replies)."""
        self.t_verify = dict(old.t_verify)
        self.overhead = old.overhead
        self.suffix_succ, self.suffix_fail = list(old.suffix_succ), list(old.suffix_fail)
        if same_drafter and old.t_draft is not None:
            self.t_draft, self.t_catchup = old.t_draft, old.t_catchup
            self._succ, self._fail = old._succ, old._fail
            self._raw_succ, self._raw_fail = old._raw_succ, old._raw_fail
            self._explored = old._explored  # what was explored need not be explored again
            self._off_s = old._off_s  # the probe budget carries over

    def predicted_rate(self, k: int, alpha: float | None = None) -> float:
        a = min(self.acceptance if alpha is None else alpha, 0.999)
        tokens = (1 - a ** (k + 1)) / (1 - a)
        cost = k * (self.t_draft or 0.0) + self.verify_cost(k + 1) + self.overhead
        return tokens / cost if cost > 0 else 0.0

    def best_k(self, limit: int, alpha: float | None = None) -> int:
        """The draft length with the best predicted rate (at `alpha`, default the measured
        acceptance); 0 unless it beats the target alone by MARGIN."""
        alone = self.predicted_rate(0, alpha)
        rates = {k: self.predicted_rate(k, alpha) for k in range(1, limit + 1)}
        best = max(rates, key=lambda k: (rates[k], -k), default=0)
        return best if best and rates[best] > MARGIN * alone else 0

    def verify_cost(self, n: int, smooth: bool = False) -> float:
        """Target time for a pass over n tokens: the measured one, or (smooth, or not
        measured) the least-squares line through all measured batch sizes."""
        if n in self.t_verify and not (smooth and len(self.t_verify) > 2):
            return self.t_verify[n]
        pts = sorted(self.t_verify.items())
        if len(pts) == 1:  # one point: assume cost grows half a token per extra token
            ((n0, t0),) = pts
            return t0 * (1 + 0.5 * (n - 1)) / (1 + 0.5 * (n0 - 1))
        # least-squares line through the measured batch sizes
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in pts) / var if var else 0.0
        return max(my + max(slope, 0.0) * (n - mx), 1e-9)

    def record(
        self,
        drafted: int,
        accepted: int,
        draft_s: float,
        verify_s: float,
        round_s: float,
        catchup_s: float = 0.0,
        catchup_tokens: int = 0,
        kind: str = "model",
        match_len: int = 0,
    ) -> None:
        """Feed back one round: tokens drafted and accepted, where the time went, and the
        drafter's catch-up after a pause (not part of round_s). kind "suffix": a suffix draft
        of a `match_len`-token match (its acceptance is kept apart from the model's)."""
        if kind == "suffix" and drafted > 0:
            self._record_suffix(drafted, accepted, verify_s, round_s, match_len)
            return
        self._rounds += 1
        if catchup_tokens > 2:
            per_token = catchup_s / catchup_tokens
            self.t_catchup = (
                per_token if self.t_catchup is None else _ema(self.t_catchup, per_token)
            )
        if self.last_k == 0 and drafted == 0:
            self._off_s += round_s
        if drafted > 0:
            per_token = draft_s / drafted
            self.t_draft = per_token if self.t_draft is None else _ema(self.t_draft, per_token)
            self._succ = self._succ * ACCEPT_DECAY + accepted
            self._fail = self._fail * ACCEPT_DECAY + (1 if accepted < drafted else 0)
            self._raw_succ += accepted
            self._raw_fail += 1 if accepted < drafted else 0
        self._record_verify(drafted + 1, verify_s)
        # drafting that proposed nothing (p_min stop) is overhead of this round, not per-token cost
        rest = max(round_s - (draft_s if drafted else 0.0) - verify_s, 0.0)
        self.overhead = _ema(self.overhead, rest) if self._rounds > 1 else rest

    def _record_verify(self, n: int, verify_s: float) -> None:
        """A target pass over n tokens took verify_s. One pass slower than OUTLIER x the
        estimate (the machine was busy) counts as OUTLIER x: a hiccup must not make one-token
        passes look dearer than batched ones and switch drafting on."""
        prev = self.t_verify.get(n)
        if prev is None:
            self.t_verify[n] = verify_s
        else:
            self.t_verify[n] = _ema(prev, min(verify_s, OUTLIER * prev))

    # ---- suffix drafts ---------------------------------------------------------------------

    def suffix_acceptance(self, match_len: int) -> float:
        """Per-token acceptance suffix drafts of this match length have earned (with the prior)."""
        b = suffix_bucket(match_len)
        succ = self.suffix_succ[b] + SUFFIX_PRIOR[b] * SUFFIX_PRIOR_WEIGHT
        fail = self.suffix_fail[b] + (1 - SUFFIX_PRIOR[b]) * SUFFIX_PRIOR_WEIGHT
        return succ / (succ + fail)

    def suffix_k(self, support: Sequence[float], match_len: int, limit: int) -> int:
        return self.suffix_plan(support, match_len, limit)[0]

    def suffix_plan(
        self, support: Sequence[float], match_len: int, limit: int
    ) -> tuple[int, float]:
        """How many tokens of a suffix proposal to verify, and the predicted tokens/second: the
        count with the best predicted rate, 0 unless it beats the target alone by MARGIN. Token
        i is expected to be accepted with the acceptance the match length has earned times its
        support (share of equally good matches agreeing)."""
        n_max = min(len(support), limit)
        if n_max <= 0 or 1 not in self.t_verify:
            return 0, 0.0
        a = self.suffix_acceptance(match_len)
        # the line through all batch sizes: one noisy pass at some size must not decide
        alone = 1.0 / (self.verify_cost(1, smooth=True) + self.overhead)
        best, best_rate, expected, chance = 0, MARGIN * alone, 1.0, 1.0
        for n in range(1, n_max + 1):
            chance *= a * support[n - 1]
            expected += chance
            rate = expected / (self.verify_cost(n + 1, smooth=True) + self.overhead)
            if rate > best_rate:
                best, best_rate = n, rate
        return best, best_rate if best else 0.0

    def model_rate(self, limit: int) -> float:
        """Predicted tokens/second of the draft model at its best length, once explored (0 when
        it does not pay or is still being explored)."""
        if self.t_draft is None or 1 not in self.t_verify or self._explored < 3:
            return 0.0
        k = self.best_k(min(limit, self.draft_max))
        return self.predicted_rate(k) if k else 0.0

    def note_suffix_proposal(self, match_len: int, proposed: int, sent: int) -> None:
        """Log a suffix proposal of `proposed` tokens, of which `sent` go to verification."""
        if proposed:
            row = self.suffix_log[suffix_bucket(match_len)]
            row[0] += 1
            row[1] += proposed
            row[2] += 1 if sent else 0
            row[3] += sent

    def _record_suffix(
        self, drafted: int, accepted: int, verify_s: float, round_s: float, match_len: int
    ) -> None:
        b = suffix_bucket(match_len)
        self.suffix_log[b][4] += accepted
        self.suffix_succ[b] = self.suffix_succ[b] * ACCEPT_DECAY + accepted
        self.suffix_fail[b] = self.suffix_fail[b] * ACCEPT_DECAY + (1 if accepted < drafted else 0)
        self._record_verify(drafted + 1, verify_s)
        if self.last_k == 0:  # the model was off (or absent) this round: its probe budget grows
            self._off_s += round_s

    # ---- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """What this controller learned, as plain JSON-able data."""
        return {
            "version": SNAPSHOT_VERSION,
            "t_verify": {str(n): t for n, t in sorted(self.t_verify.items())},
            "overhead": self.overhead,
            "t_draft": self.t_draft,
            "t_catchup": self.t_catchup,
            "succ": self._succ,
            "fail": self._fail,
            "raw_succ": self._raw_succ,
            "raw_fail": self._raw_fail,
            "explored": self._explored,
            "suffix_succ": list(self.suffix_succ),
            "suffix_fail": list(self.suffix_fail),
        }

    def restore(self, data: Mapping[str, object]) -> bool:
        """Start from a snapshot (of the same models on the same machine). False, and nothing
        changed, when it is not a snapshot this version understands."""
        try:
            state = _parse_snapshot(data)
        except (KeyError, TypeError, ValueError):
            return False
        self.t_verify = state["t_verify"]
        self.overhead = state["overhead"]
        self.t_draft, self.t_catchup = state["t_draft"], state["t_catchup"]
        self._succ, self._fail = state["succ"], state["fail"]
        self._raw_succ, self._raw_fail = state["raw_succ"], state["raw_fail"]
        self._explored = state["explored"]
        self.suffix_succ, self.suffix_fail = state["suffix_succ"], state["suffix_fail"]
        return True


def suffix_bucket(match_len: int) -> int:
    return sum(1 for edge in SUFFIX_BUCKETS if match_len >= edge)


def _parse_snapshot(data: Mapping[str, object]) -> dict[str, Any]:
    if data.get("version") != SNAPSHOT_VERSION:
        raise ValueError("another snapshot version")

    def num(x: object) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise TypeError("not a number")
        if x < 0:
            raise ValueError("negative")
        return float(x)

    def opt(x: object) -> float | None:
        return None if x is None else num(x)

    def buckets(x: object) -> list[float]:
        if not isinstance(x, list) or len(x) != len(SUFFIX_PRIOR):
            raise ValueError("bucket count")
        return [num(v) for v in x]

    t_verify = data["t_verify"]
    if not isinstance(t_verify, dict):
        raise TypeError("t_verify")
    return {
        "t_verify": {int(n): num(t) for n, t in t_verify.items() if int(n) >= 1},
        "overhead": num(data["overhead"]),
        "t_draft": opt(data["t_draft"]),
        "t_catchup": opt(data["t_catchup"]),
        "succ": num(data["succ"]),
        "fail": num(data["fail"]),
        "raw_succ": int(num(data["raw_succ"])),
        "raw_fail": int(num(data["raw_fail"])),
        "explored": min(int(num(data["explored"])), 3),
        "suffix_succ": buckets(data["suffix_succ"]),
        "suffix_fail": buckets(data["suffix_fail"]),
    }


def _ema(old: float, new: float) -> float:
    return old + EMA * (new - old)
