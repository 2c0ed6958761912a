"""Adaptive draft length: pick k (tokens drafted per target pass) from measured costs.

Model: with per-token acceptance a, a pass over k drafts yields (1 - a^(k+1)) / (1 - a) tokens
and costs k·t_draft + t_verify(k+1). Every input is measured online: t_draft per drafted token,
t_verify for each batch size seen (a straight line through them predicts the rest), and a. The
controller picks the k with the best predicted tokens/second; k = 0 is the target alone, so when
the draft does not pay, speculation switches off and is only probed now and then (with
exponential back-off, so probing costs a few percent at most)."""

from __future__ import annotations

from dataclasses import dataclass, field

EMA = 0.25  # weight of a new timing sample
ACCEPT_DECAY = 0.97  # how fast old acceptance evidence fades (per round)
PROBE_START = 64  # rounds with speculation off before the first probe (a probe costs a catch-up)
PROBE_MAX = 2048
# Speculate only when the model predicts a clear gain: timings are noisy, and a borderline
# draft length that loses on this hardware costs more than the small win it might bring.
MARGIN = 1.05
NEIGHBOUR_EVERY = 8  # rounds between tries of a neighbouring draft length (keeps costs fresh)


@dataclass
class DraftLengthController:
    draft_max: int
    adaptive: bool = True
    draft_min: int = 0
    t_draft: float | None = None  # seconds per drafted token
    t_verify: dict[int, float] = field(default_factory=dict)  # batch size -> seconds
    overhead: float = 0.0  # per-round time outside drafting and verification
    _succ: float = 2.0  # decayed accepted count (prior: a = 2/3)
    _fail: float = 1.0  # decayed rejection count
    _rounds: int = 0
    _explored: int = 0
    _since_neighbour: int = 0
    _neighbour_up: bool = True
    _off_rounds: int = 0
    _probe_every: int = PROBE_START
    last_k: int = 0
    switched_off: bool = False

    @property
    def acceptance(self) -> float:
        return self._succ / (self._succ + self._fail)

    def next_k(self, limit: int) -> int:
        """Draft length for the next round, at most `limit` (context room, max_tokens)."""
        limit = min(limit, self.draft_max)
        if not self.adaptive or limit <= 0:
            k = max(limit, 0)
        elif 1 not in self.t_verify:
            k = 0  # measure the target alone first: it is the baseline to beat
        elif self._explored < 3 or len(self.t_verify) < 2:
            # Explore cheaply first (k=2); if even that predicts no gain, stop exploring. Else try
            # the long and a middle length, so verify costs are interpolated, not extrapolated.
            hopeless = self.t_draft is not None and self.best_k(limit, alpha=1.0) == 0
            if self._explored == 1 and hopeless:  # no gain even if every draft were accepted
                self._explored = 3
                k = 0
            else:
                plan = (min(2, self.draft_max), self.draft_max, max(1, self.draft_max // 2))
                k = min(limit, plan[min(self._explored, 2)])
                self._explored += 1
        else:
            k = self.best_k(limit)
            if k == 0:
                self._off_rounds += 1
                if self._off_rounds >= self._probe_every:  # look again, cheaply
                    self._off_rounds = 0
                    self._probe_every = min(self._probe_every * 2, PROBE_MAX)
                    k = min(limit, 2)
            else:
                self._probe_every = PROBE_START
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

    def learn_from(self, old: DraftLengthController, same_drafter: bool) -> None:
        """Keep what an earlier controller measured: target costs always, draft costs and
        acceptance when the drafter is the same (settings changed between replies)."""
        self.t_verify = dict(old.t_verify)
        self.overhead = old.overhead
        if same_drafter and old.t_draft is not None:
            self.t_draft = old.t_draft
            self._succ, self._fail = old._succ, old._fail
            if len(self.t_verify) >= 2:
                self._explored = 3  # costs are known: no need to explore again
            # a probe schedule that backed off stays backed off
            self._probe_every, self._off_rounds = old._probe_every, old._off_rounds

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

    def verify_cost(self, n: int) -> float:
        if n in self.t_verify:
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
    ) -> None:
        """Feed back one round: tokens drafted and accepted, and where the time went."""
        self._rounds += 1
        if drafted > 0:
            per_token = draft_s / drafted
            self.t_draft = per_token if self.t_draft is None else _ema(self.t_draft, per_token)
            self._succ = self._succ * ACCEPT_DECAY + accepted
            self._fail = self._fail * ACCEPT_DECAY + (1 if accepted < drafted else 0)
        n = drafted + 1
        prev = self.t_verify.get(n)
        self.t_verify[n] = verify_s if prev is None else _ema(prev, verify_s)
        # drafting that proposed nothing (p_min stop) is overhead of this round, not per-token cost
        rest = max(round_s - (draft_s if drafted else 0.0) - verify_s, 0.0)
        self.overhead = _ema(self.overhead, rest) if self._rounds > 1 else rest


def _ema(old: float, new: float) -> float:
    return old + EMA * (new - old)
