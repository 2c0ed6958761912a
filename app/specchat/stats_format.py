"""The engine's Stats as text: the one home of every stats line and table.

Used by the app (status bar, a reply's header and stats view, the chat summary), `specchat ask`,
the Markdown export and `specchat bench`. Only formatting, no UI imports: every value is a Stats
field (live, or as a reply saved it: a dict), and each drafter kind's acceptance is worked out
once here (kind_figures)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from specchat.engine.types import DrafterKind, Stats

# what the stats table calls each drafter kind, in the chain's order (suffix first)
KIND_NAMES = {DrafterKind.SUFFIX: "copied (suffix)", DrafterKind.MODEL: "drafted (model)"}

STAT_LABELS: tuple[tuple[str, str], ...] = (
    ("tokens_per_second", "tokens/s"),
    ("acceptance_rate", "acceptance"),
    ("tokens_per_pass", "tokens per pass"),
    ("draft_max", "draft length"),
    ("ttft_ms", "time to first token (ms)"),
    ("generated_tokens", "generated tokens"),
    ("generation_ms", "generation (ms)"),
    ("prompt_tokens", "prompt tokens"),
    ("cached_prompt_tokens", "prompt tokens reused from cache"),
    ("prompt_ms", "prompt eval (ms)"),
    ("drafted", "drafted"),
    ("accepted", "accepted"),
    ("target_passes", "target passes"),
    ("mode", "draft mode"),
    ("finish_reason", "finish"),
)

# the counters a chat's totals sum over its replies
COUNTERS = (
    "generated_tokens",
    "generation_ms",
    "drafted",
    "accepted",
    "target_passes",
    *(f"{kind.value}_{n}" for kind in DrafterKind for n in ("drafted", "accepted")),
)

StatsLike = Stats | Mapping[str, object]


# ---- numbers --------------------------------------------------------------------------------


def stats_dict(stats: StatsLike) -> Mapping[str, object]:
    return stats.to_dict() if isinstance(stats, Stats) else stats


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def num(value: object, digits: int = 1) -> str:
    """A stat: whole numbers as they are, others to `digits` places; '–' when missing."""
    if not _is_number(value):
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def pct(value: object, missing: str = "–") -> str:
    return f"{value * 100:.0f}%" if isinstance(value, (int, float)) else missing


def fixed(value: object, digits: int = 1, missing: str = "?") -> str:
    """Any number to `digits` places (the export's style)."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else missing


def rate(accepted: float, drafted: float) -> float | None:
    return accepted / drafted if drafted else None


def stat_value(key: str, value: object) -> str:
    if key == "acceptance_rate":
        return pct(value)
    if key.endswith("_ms"):
        return num(value, 0)
    return num(value, 2 if key == "tokens_per_pass" else 1)


# ---- acceptance per drafter kind --------------------------------------------------------------


@dataclass(frozen=True)
class KindFigure:
    """What one drafter kind proposed and the target accepted (in a reply, or a chat)."""

    kind: DrafterKind
    accepted: float
    drafted: float

    @property
    def rate(self) -> float | None:
        return rate(self.accepted, self.drafted)

    def text(self) -> str:
        """'86% (12/14)'."""
        return f"{pct(self.rate)} ({self.accepted:.0f}/{self.drafted:.0f})"


def kind_figures(stats: StatsLike) -> list[KindFigure]:
    """Each drafter kind that drafted something, suffix first."""
    s = stats_dict(stats)
    figures = []
    for kind in DrafterKind:
        drafted = _count(s.get(f"{kind.value}_drafted"))
        accepted = _count(s.get(f"{kind.value}_accepted"))
        if drafted and accepted is not None:
            figures.append(KindFigure(kind, accepted, drafted))
    return figures


def _count(value: object) -> float | None:
    """A counter (a saved reply's may be missing, or a float in a chat's totals)."""
    return value if _is_number(value) else None  # type: ignore[return-value]


def kind_cell(stats: StatsLike, kind: DrafterKind) -> str:
    """One kind's acceptance: '86% (12/14)', or '–' when it drafted nothing."""
    found = [f for f in kind_figures(stats) if f.kind is kind]
    return found[0].text() if found else "–"


# ---- one reply ------------------------------------------------------------------------------


def live_line(stats: Stats | None) -> str:
    """The status bar: this reply's numbers as they change."""
    if stats is None:
        return "– tok/s │ accepted – │ – tok/pass │ draft – │ TTFT –"
    line = (
        f"{num(stats.tokens_per_second)} tok/s │ accepted {pct(stats.acceptance_rate)}"
        f" ({stats.accepted}/{stats.drafted}) │ {num(stats.tokens_per_pass, 2)} tok/pass │"
        f" draft {stats.draft_max} │ TTFT {num(stats.ttft_ms, 0)} ms"
    )
    cache = cache_brief(stats)
    return f"{line} │ {cache}" if cache else line


def cache_brief(stats: Stats) -> str:
    """'2,950 prompt tokens from the cache, saved 25.1 s' ('' when nothing was restored)."""
    if not stats.restored_prompt_tokens:
        return ""
    return (
        f"{stats.restored_prompt_tokens:,} prompt tokens from the cache, "
        f"saved {stats.restore_saved_ms / 1000:.1f} s"
    )


def summary_line(stats: StatsLike) -> str:
    """A finished reply's headline numbers (the app shows it under the reply)."""
    s = stats_dict(stats)
    parts = [
        f"{num(s.get('tokens_per_second'))} tok/s",
        f"{s.get('generated_tokens', 0)} tokens",
    ]
    if s.get("mode", "none") != "none":
        parts += [
            f"acceptance {pct(s.get('acceptance_rate'))}{_kinds_brief(s)}",
            f"{num(s.get('tokens_per_pass'), 2)} tok/pass",
        ]
    parts.append(f"TTFT {num(s.get('ttft_ms'), 0)} ms")
    return " · ".join(parts)


def _kinds_brief(s: Mapping[str, object]) -> str:
    """' (suffix 86%, model 50%)' when both drafter kinds drafted, else ''."""
    figures = kind_figures(s)
    if len(figures) < 2:
        return ""
    return " (" + ", ".join(f"{f.kind.value} {pct(f.rate)}" for f in figures) + ")"


def stats_table(stats: StatsLike) -> list[tuple[str, str]]:
    """A reply's stats view: every labelled stat, then acceptance per drafter kind."""
    s = stats_dict(stats)
    rows = [(label, stat_value(key, s[key])) for key, label in STAT_LABELS if key in s]
    kinds = [(f"acceptance, {KIND_NAMES[f.kind]}", f.text()) for f in kind_figures(s)]
    at = next((i + 1 for i, (label, _) in enumerate(rows) if label == "accepted"), len(rows))
    return rows[:at] + kinds + rows[at:]


def ask_line(stats: Stats) -> str:
    """What `specchat ask` prints on stderr after the reply."""
    line = (
        f"{stats.generated_tokens} tokens, {stats.tokens_per_second:.1f} tok/s, "
        f"TTFT {stats.ttft_ms:.0f} ms, {stats.tokens_per_pass:.2f} tok/pass"
    )
    if stats.drafted:
        line += f", acceptance {pct(stats.acceptance_rate)} ({stats.accepted}/{stats.drafted})"
    line += "".join(f", {f.kind.value} {f.text()}" for f in kind_figures(stats))
    if stats.restored_prompt_tokens:
        line += f", {cache_brief(stats)}"
    return f"[{line}, mode {stats.mode}{' cross-vocab' if stats.cross_vocab else ''}]"


def markdown_line(stats: Mapping[str, object]) -> str:
    """A saved reply's numbers in a Markdown export."""
    s = stats
    return (
        f"<sub>{s.get('generated_tokens')} tokens · {fixed(s.get('tokens_per_second'))} tok/s"
        f" · acceptance {pct(s.get('acceptance_rate'), missing='?')}"
        f" · {fixed(s.get('tokens_per_pass'))} tokens/pass · TTFT {fixed(s.get('ttft_ms'), 0)} ms"
        "</sub>"
    )


# ---- a chat: one row per reply, and sums over replies -----------------------------------------


SUMMARY_COLUMNS = (
    "#",
    "tokens",
    "tok/s",
    "acceptance",
    "accepted/drafted",
    "tok/pass",
    "TTFT ms",
    "finish",
)


def summary_columns(kinds: Sequence[DrafterKind]) -> list[str]:
    """The chat summary's columns, with one per drafter kind that drafted in the chat."""
    columns = list(SUMMARY_COLUMNS)
    columns[5:5] = [f"{kind.value} acceptance" for kind in kinds]
    return columns


def summary_row(index: int, s: Mapping[str, object], kinds: Sequence[DrafterKind]) -> list[str]:
    """One reply's row in the chat summary."""
    return [
        str(index),
        num(s.get("generated_tokens")),
        num(s.get("tokens_per_second")),
        pct(s.get("acceptance_rate")),
        f"{s.get('accepted', 0)}/{s.get('drafted', 0)}",
        *(kind_cell(s, kind) for kind in kinds),
        num(s.get("tokens_per_pass"), 2),
        num(s.get("ttft_ms"), 0),
        str(s.get("finish_reason", "")),
    ]


def totals(all_stats: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """Sums of the engine's counters over replies."""
    return {k: float(sum(_number(s.get(k)) for s in all_stats)) for k in COUNTERS}


def _number(value: object) -> float:
    return float(value) if _is_number(value) else 0.0  # type: ignore[arg-type]


def kinds_used(all_stats: Sequence[Mapping[str, object]]) -> list[DrafterKind]:
    """The drafter kinds that drafted in some reply, suffix first."""
    used = {f.kind for s in all_stats for f in kind_figures(s)}
    return [kind for kind in DrafterKind if kind in used]


def totals_line(all_stats: Sequence[Mapping[str, object]]) -> str:
    """A chat's totals: replies, tokens, overall speed, acceptance (and per drafter kind)."""
    t = totals(all_stats)
    speed = t["generated_tokens"] / (t["generation_ms"] / 1000) if t["generation_ms"] else 0.0
    per_pass = t["generated_tokens"] / t["target_passes"] if t["target_passes"] else 0.0
    by_kind = "".join(f" · {f.kind.value} {f.text()}" for f in kind_figures(t))
    return (
        f"{len(all_stats)} replies · {t['generated_tokens']:.0f} tokens ·"
        f" {speed:.1f} tok/s overall · acceptance {pct(rate(t['accepted'], t['drafted']) or 0.0)}"
        f" ({t['accepted']:.0f}/{t['drafted']:.0f}){by_kind} · {per_pass:.2f} tok/pass"
    )
