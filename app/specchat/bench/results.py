"""Benchmark results: one record per run, one summary per mode, and the JSON document."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from specchat.bench.stats import (
    Spread,
    acceptance_by_position,
    alpha_from_passes,
    best_predicted,
    greedy_identity,
    pair_ratios,
    predicted_speedup,
    spread,
)

SCHEMA_VERSION = 1
BASELINE = "target"


@dataclass(frozen=True)
class Physics:
    """The pair's cost structure on this machine (see stats.predicted_speedup)."""

    target_token_ms: float
    draft_token_ms: float | None
    c: float | None  # draft cost per token / target cost per token
    b: dict[int, float]  # n -> target cost of one pass over n tokens / one token


@dataclass(frozen=True)
class RunRecord:
    mode: str
    round: int
    prompt: str
    token_ids: tuple[int, ...] | None  # None: not observable (native binaries)
    tokens_per_second: float  # measured here: tokens after the first / time after the first
    ttft_ms: float | None  # None: not reported (native binaries)
    passes: tuple[tuple[int, int], ...] = ()  # (drafted, accepted) per verify pass
    stats: dict[str, object] = field(default_factory=dict)  # the engine's Stats, when it has one
    peak_rss_mb: float | None = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.round, self.prompt)


@dataclass(frozen=True)
class ModeSpecInfo:
    """What a mode is, for the summary: draft length k (fixed), adaptive, or a peer."""

    label: str
    kind: str  # "target" | "fixed" | "adaptive" | "chain" | "lookup" | "peer"
    k: int | None = None
    baseline: str = BASELINE  # speedup is measured against this mode's runs
    identity_ref: str | None = BASELINE  # greedy tokens are compared with this mode's runs


@dataclass
class ModeSummary:
    mode: str
    kind: str
    k: int | None
    runs: int
    tokens_per_second: Spread | None
    speedup: Spread | None
    ttft_ms: Spread | None
    acceptance_rate: float | None
    alpha: float | None
    tokens_per_pass: float | None
    identical: int
    compared: int
    predicted_speedup: float | None
    peak_rss_mb: float | None
    acceptance_by_position: list[float | None]

    @property
    def identity(self) -> float | None:
        return self.identical / self.compared if self.compared else None

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        for name in ("tokens_per_second", "speedup", "ttft_ms"):
            value = getattr(self, name)
            d[name] = value.to_dict() if value else None
        d["greedy_identity"] = self.identity
        return d


def summarize(modes: Sequence[ModeSpecInfo], records: Sequence[RunRecord],
              physics: Physics | None, greedy: bool = True) -> list[ModeSummary]:
    """Per-mode figures. Token identity with target alone is only checked for greedy runs
    (sampled runs match in distribution, not token for token)."""
    # The pair's own α, from the fixed draft lengths (they draft without a confidence cutoff);
    # the adaptive controller's prediction uses it, since its own α only counts what it chose.
    fixed = {m.label for m in modes if m.kind == "fixed"}
    fixed_passes: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for r in records:
        if r.mode in fixed:
            fixed_passes.setdefault(r.key, []).extend(r.passes)
    pair_alpha = {key: alpha_from_passes(ps) for key, ps in fixed_passes.items()}
    out = []
    for m in modes:
        base_tps = {r.key: r.tokens_per_second for r in records if r.mode == m.baseline}
        base_ids = {r.key: r.token_ids for r in records
                    if greedy and r.mode == m.identity_ref and r.token_ids is not None}
        recs = [r for r in records if r.mode == m.label]
        passes = [p for r in recs for p in r.passes]
        drafted = sum(d for d, _ in passes)
        accepted = sum(a for _, a in passes)
        alpha = alpha_from_passes(passes) if drafted else None
        n_pass = sum(int(r.stats.get("target_passes", 0) or 0) for r in recs)  # type: ignore[call-overload]
        gen = sum(len(r.token_ids or ()) for r in recs)
        ids = {r.key: r.token_ids for r in recs if r.token_ids is not None}
        same, compared = greedy_identity(base_ids, ids)
        rss = [r.peak_rss_mb for r in recs if r.peak_rss_mb is not None]
        out.append(ModeSummary(
            mode=m.label,
            kind=m.kind,
            k=m.k,
            runs=len(recs),
            tokens_per_second=spread([r.tokens_per_second for r in recs]),
            speedup=spread(pair_ratios(base_tps, {r.key: r.tokens_per_second for r in recs})),
            ttft_ms=spread([r.ttft_ms for r in recs if r.ttft_ms is not None]),
            acceptance_rate=accepted / drafted if drafted else None,
            alpha=alpha,
            tokens_per_pass=gen / n_pass if n_pass else None,
            identical=same,
            compared=compared,
            predicted_speedup=_predict_runs(m, recs, pair_alpha, physics),
            peak_rss_mb=max(rss) if rss else None,
            acceptance_by_position=acceptance_by_position(passes, max((d for d, _ in passes),
                                                                       default=0)),
        ))
    return out


def _predict_runs(m: ModeSpecInfo, recs: Sequence[RunRecord],
                  pair_alpha: dict[tuple[int, str], float | None],
                  physics: Physics | None) -> float | None:
    """The prediction summarized like the measurement: the median over runs of the speedup
    predicted at each run's own α (prompts differ a lot in acceptance, and the speedup is far
    from linear in α, so one pooled α would predict more than the median run can reach)."""
    if m.kind == "target":
        return _predict(m, None, physics)
    preds = []
    for r in recs:
        # adaptive: the pair's α on this prompt and round, from the fixed lengths (they draft
        # without a cutoff); its own α only counts what it chose to draft
        alpha = pair_alpha.get(r.key) if m.kind == "adaptive" else None
        if alpha is None:
            alpha = alpha_from_passes(r.passes)
        pred = _predict(m, alpha, physics)
        if pred is not None:
            preds.append(pred)
    return statistics.median(preds) if preds else None


def _predict(m: ModeSpecInfo, alpha: float | None, physics: Physics | None) -> float | None:
    if physics is None or physics.c is None:
        return None
    if m.kind == "target":
        return 1.0
    if alpha is None:
        return None
    if m.kind == "fixed" and m.k is not None and m.k + 1 in physics.b:
        return predicted_speedup(alpha, m.k, physics.c, physics.b)
    if m.kind == "adaptive":  # the best any fixed length could do, or 1 with speculation off
        return best_predicted(alpha, physics.c, physics.b)[1]
    return None


def to_json_doc(settings: dict[str, object], physics: Physics | None,
                summaries: Sequence[ModeSummary], records: Sequence[RunRecord],
                notes: Sequence[str] = ()) -> dict[str, object]:
    return {
        "schema": SCHEMA_VERSION,
        "settings": settings,
        "physics": None if physics is None else {
            "target_token_ms": physics.target_token_ms,
            "draft_token_ms": physics.draft_token_ms,
            "c": physics.c,
            "b": {str(n): v for n, v in sorted(physics.b.items())},
        },
        "modes": [s.to_dict() for s in summaries],
        "runs": [
            {**asdict(r), "token_ids": None if r.token_ids is None else list(r.token_ids),
             "passes": [list(p) for p in r.passes]}
            for r in records
        ],
        "notes": list(notes),
    }
