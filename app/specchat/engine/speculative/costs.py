"""Warm-up and a first measurement of what each model costs, taken once at load time.

llama.cpp warms a model up with one pass before serving (its first pass pays for page faults and
buffer setup). Here that pass also times one-token and batched target passes and one-token and
batched draft passes, so the draft-length controller starts from this machine's real costs: a
draft that cannot pay even if every token were accepted is never run, and nothing is spent on
evaluating its prompt to find that out."""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from specchat.engine.llama.model import LlamaModel
from specchat.engine.speculative.sampling import greedy

REPS = 2  # timed repetitions per pass size (after one untimed warm-up pass)
CATCHUP_BATCH = 16  # batch size timed for the draft's catch-up (prompt evaluation) cost


@dataclass(frozen=True)
class LoadCosts:
    t_verify: dict[int, float] = field(default_factory=dict)  # target pass over n tokens, s
    t_draft: float | None = None  # one draft pass (one drafted token), s
    t_catchup: float | None = None  # draft prompt evaluation, s per token


def _filler(model: LlamaModel, n: int) -> list[int]:
    seed = model.tokenize("The quick brown fox jumps over the lazy dog.", add_special=False,
                          parse_special=False) or [0]
    return [seed[i % len(seed)] for i in range(n)]


def timed_pass(model: LlamaModel, tokens: Sequence[int], verify: bool = True) -> float:
    """Time one pass appended to the cache, reading its logits rows as the engine does: every
    row of a verify batch, the last row otherwise (one token, or a catch-up)."""
    t = time.perf_counter()
    every_row = verify and len(tokens) > 1
    model.decode(list(tokens), "all" if every_row else "last")
    for row in range(-len(tokens) if every_row else -1, 0):
        greedy(model.logits(row))
    return time.perf_counter() - t


def _time_pass(model: LlamaModel, tokens: Sequence[int], verify: bool = True) -> float:
    """timed_pass, then the cache as it was."""
    n_past = len(model.tokens)
    dt = timed_pass(model, tokens, verify)
    model.truncate(n_past)
    return dt


def warm_up(model: LlamaModel) -> None:
    """One untimed pass, then an empty cache (what llama.cpp does before serving)."""
    model.reset()
    model.decode(_filler(model, 2), "last")
    model.reset()


def measure_load_costs(target: LlamaModel, draft: LlamaModel | None, draft_max: int) -> LoadCosts:
    """Time target passes of 1, 3 and draft_max + 1 tokens and draft passes after a short
    context; medians of REPS. Both caches are left empty."""
    context = _filler(target, 8)
    target.reset()
    target.decode(context, "last")
    sizes = sorted({1, 3, draft_max + 1})
    fill = _filler(target, max(sizes))
    t_verify = {
        n: statistics.median(_time_pass(target, fill[:n]) for _ in range(REPS))
        for n in sizes
    }
    target.reset()
    t_draft = t_catchup = None
    if draft is not None:
        dctx = _filler(draft, 8)
        draft.reset()
        draft.decode(dctx, "last")
        dfill = _filler(draft, CATCHUP_BATCH)
        t_draft = statistics.median(_time_pass(draft, dfill[:1]) for _ in range(REPS))
        t_catchup = statistics.median(
            _time_pass(draft, dfill, verify=False) for _ in range(REPS)
        ) / CATCHUP_BATCH
        draft.reset()
    return LoadCosts(t_verify, t_draft, t_catchup)


# ---- the cost model the controllers decide with ----------------------------------------------

WINDOW = 9  # recent samples kept per quantity; the estimate is their median
MAX_AGE_S = 7 * 24 * 3600.0  # costs learned longer ago than this are not restored
# A pass over n tokens costs at least LOW_RATIO one-token passes (timer noise) and at most n of
# them (batching never makes a token dearer): a sample outside that is the machine, not the model.
LOW_RATIO = 0.5
# Before a width is measured in this run, its cost is read off the line through the widths that
# were; where nothing was, a pass over n tokens is taken to cost 1 + PRIOR_SLOPE (n - 1) tokens
# (2-core CPUs measure 0.35-0.6; GPUs far less).
PRIOR_SLOPE = 0.5


_STAMPS = itertools.count()


@dataclass
class Samples:
    """Recent measurements of one quantity; the estimate is their median (one busy moment moves
    it by one rank, not by its size). Samples restored from an earlier run are `stale`: the first
    fresh one replaces them all."""

    values: list[float] = field(default_factory=list)
    stale: bool = False
    # a stamp no other Samples ever had, renewed by every add: readers cache what they derive
    version: int = field(default_factory=lambda: next(_STAMPS))

    def add(self, value: float) -> None:
        if self.stale:
            self.values, self.stale = [], False
        self.values.append(value)
        del self.values[:-WINDOW]
        self.version = next(_STAMPS)

    @property
    def estimate(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def fresh(self) -> bool:
        return bool(self.values) and not self.stale


class CostModel:
    """What a target pass over n tokens, a drafted token and a catch-up token cost, measured in
    units of one target token at the same moment.

    A busy machine slows the one-token pass and the batched pass alike, so the ratio between
    them holds while absolute times swing tenfold; only the one-token time (`t1`, re-measured by
    every round that drafts nothing) is in seconds. Decisions compare ratios, so a busy minute
    neither switches drafting off nor on, and costs learned on another day start stale: the
    first fresh sample of each replaces them, and until then a width is never assumed dearer
    than the prior says (a poisoned file costs one probe, not drafting for good)."""

    def __init__(self) -> None:
        self.one = Samples()  # seconds of a one-token target pass
        self.ratio: dict[int, Samples] = {}  # width n >= 2 -> pass time / one-token time
        self.draft = Samples()  # a drafted token, in target tokens
        self.catchup = Samples()  # a token the draft reads to catch up (batched)
        self.overhead = Samples()  # per round, outside drafting and verification
        # the line through the widths' medians, kept until a width's samples change (the
        # planner reads it for every width it weighs, every round)
        self._fit_key: tuple[tuple[int, int], ...] = ()
        self._fit: tuple[float, float, float] | None = None

    # ---- recording -----------------------------------------------------------------------------

    @property
    def t1(self) -> float | None:
        return self.one.estimate

    def record_pass(self, n: int, seconds: float) -> None:
        """A target pass over n tokens (the last token plus n - 1 drafts) took `seconds`."""
        if n <= 1:
            self.one.add(seconds)
            return
        if not self.one.fresh:
            return  # compare with this run's own pace only (one-token passes come first)
        ratio = min(max(seconds / self.t1, LOW_RATIO), float(n))
        self.ratio.setdefault(n, Samples()).add(ratio)

    def record_relative(self, which: Samples, seconds: float) -> None:
        """One sample of a drafter-side cost, in seconds, stored relative to `t1`."""
        if self.one.fresh and self.t1:
            which.add(seconds / self.t1)

    def seed(self, t_verify: dict[int, float], t_draft: float | None,
             t_catchup: float | None) -> None:
        """Start from costs measured at load time (measure_load_costs); stale, so the loop's own
        samples replace them."""
        one = t_verify.get(1)
        if one is None or self.one.values:
            return
        self.one = Samples([one], stale=True)
        for n, t in t_verify.items():
            if n > 1 and n not in self.ratio:
                self.ratio[n] = Samples([min(max(t / one, LOW_RATIO), float(n))], stale=True)
        for which, t in ((self.draft, t_draft), (self.catchup, t_catchup)):
            if t is not None and not which.values:
                which.values, which.stale = [t / one], True

    # ---- reading -------------------------------------------------------------------------------

    def verify_ratio(self, n: int, smooth: bool = False) -> float:
        """A pass over n tokens, in one-token passes: this width's own median when measured in
        this run (and not `smooth`), else the line through every width's median; widths known
        only from an earlier run never read dearer than the prior."""
        if n <= 1:
            return 1.0
        own = self.ratio.get(n)
        if own is not None and own.fresh and not smooth:
            return own.estimate or 1.0
        line = self._line(n)
        if own is None or not own.fresh:
            line = min(line, 1.0 + PRIOR_SLOPE * (n - 1))
        return line

    def _line(self, n: int) -> float:
        """Least squares through (1, 1) and each measured width's median."""
        fit = self._fitted()
        if fit is None:
            return 1.0 + PRIOR_SLOPE * (n - 1)
        mx, my, slope = fit
        return max(my + slope * (n - mx), 1.0)

    def _fitted(self) -> tuple[float, float, float] | None:
        """(mean width, mean ratio, slope >= 0) of the line, or None before any width >= 2."""
        widths = sorted(self.ratio.items())
        key = tuple((w, s.version) for w, s in widths)
        if key != self._fit_key:
            points = [(float(w), s.estimate) for w, s in widths if s.estimate]
            self._fit_key, self._fit = key, _fit_line([(1.0, 1.0), *points])
        return self._fit

    def verify_s(self, n: int, smooth: bool = False) -> float:
        """A pass over n tokens in seconds (0 before anything was measured)."""
        return (self.t1 or 0.0) * self.verify_ratio(n, smooth)

    # ---- persistence ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        return {
            "saved": time.time(),
            "one": list(self.one.values),
            "ratio": {str(n): list(s.values) for n, s in sorted(self.ratio.items())},
            "draft": list(self.draft.values),
            "catchup": list(self.catchup.values),
            "overhead": list(self.overhead.values),
        }

    def restore(self, data: object) -> bool:
        """Start from a snapshot: every sample stale. False (nothing changed) for data this
        version cannot read, or costs older than MAX_AGE_S."""
        try:
            parsed = _parse_costs(data)
        except (KeyError, TypeError, ValueError):
            return False
        if parsed is None:
            return False
        one, ratio, draft, catchup, overhead = parsed
        self.one = Samples(one, stale=True)
        self.ratio = {n: Samples(v, stale=True) for n, v in ratio.items()}
        self.draft = Samples(draft, stale=True)
        self.catchup = Samples(catchup, stale=True)
        self.overhead = Samples(overhead, stale=True)
        return True


def _fit_line(pts: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    if len(pts) == 1:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    var = sum((x - mx) ** 2 for x, _ in pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / var if var else 0.0
    return mx, my, max(slope, 0.0)


def _parse_costs(
    data: object,
) -> tuple[list[float], dict[int, list[float]], list[float], list[float], list[float]] | None:
    if not isinstance(data, dict):
        raise TypeError("costs")
    saved = non_negative(data["saved"])
    if time.time() - saved > MAX_AGE_S:
        return None

    def series(x: object) -> list[float]:
        if not isinstance(x, list):
            raise TypeError("series")
        return [non_negative(v) for v in x][-WINDOW:]

    raw = data["ratio"]
    if not isinstance(raw, dict):
        raise TypeError("ratio")
    ratio = {int(n): series(v) for n, v in raw.items() if int(n) >= 2}
    return (series(data["one"]), ratio, series(data["draft"]), series(data["catchup"]),
            series(data["overhead"]))


def non_negative(x: object) -> float:
    """A finite, non-negative number from untrusted data (TypeError, ValueError otherwise)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise TypeError("not a number")
    if x < 0:
        raise ValueError("negative")
    return float(x)
