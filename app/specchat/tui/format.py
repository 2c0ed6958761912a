"""Text for the engine's numbers. Only formatting: every value is the engine's own Stats field."""

from __future__ import annotations

from collections.abc import Mapping

from textual.content import Content

from specchat.engine.types import EngineInfo, ModelInfo, Stats

# Token origins as a reply saves them ([text, origin] runs): copied from the conversation by
# the suffix drafter, drafted by the draft model, or the target's own. "draft" is a draft of
# unknown kind (every reply saved before the kinds were told apart): shown as a model draft.
SUFFIX, MODEL, DRAFT, TARGET = "suffix", "model", "draft", "target"

# $text picks black or white for contrast against the tinted background, in any theme
# (measured: 6.2:1 or better in every built-in theme but the two ANSI ones, which use the
# terminal's palette); target tokens are also underlined and copied ones italic, so the three
# origins differ without relying on colour alone.
SUFFIX_STYLE = "$text on $warning-muted italic"
MODEL_STYLE = "$text on $success-muted"
DRAFT_STYLE = MODEL_STYLE
TARGET_STYLE = "$text on $primary-muted underline"
ORIGIN_STYLES = {
    SUFFIX: SUFFIX_STYLE,
    MODEL: MODEL_STYLE,
    DRAFT: DRAFT_STYLE,
    TARGET: TARGET_STYLE,
}
# what the legend calls each origin (where the colouring is toggled), in reading order
ORIGIN_LEGEND = (("copied", SUFFIX_STYLE), ("drafted", MODEL_STYLE), ("target", TARGET_STYLE))
# the drafter kinds whose figures the stats show: (kind, name in the stats table)
DRAFTER_KINDS = ((SUFFIX, "copied (suffix)"), (MODEL, "drafted (model)"))


def origin_of(origin: str, drafter: str = "") -> str:
    """The saved origin of one token: the engine's origin, a draft told apart by its drafter."""
    if origin != DRAFT:
        return origin
    return drafter if drafter in (SUFFIX, MODEL) else DRAFT


def origin_legend() -> Content:
    """The three origins, each in its own style."""
    return Content(" ").join(Content.styled(f" {name} ", style) for name, style in ORIGIN_LEGEND)


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


def stats_dict(stats: Stats | Mapping[str, object]) -> Mapping[str, object]:
    return stats.to_dict() if isinstance(stats, Stats) else stats


def num(value: object, digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def pct(value: object) -> str:
    return f"{value * 100:.0f}%" if isinstance(value, (int, float)) else "–"


def stat_value(key: str, value: object) -> str:
    if key == "acceptance_rate":
        return pct(value)
    if key.endswith("_ms"):
        return num(value, 0)
    return num(value, 2 if key == "tokens_per_pass" else 1)


def cache_brief(stats: Stats) -> str:
    """'2,950 prompt tokens from the cache, saved 25.1 s' ('' when nothing was restored)."""
    if not stats.restored_prompt_tokens:
        return ""
    return (
        f"{stats.restored_prompt_tokens:,} prompt tokens from the cache, "
        f"saved {stats.restore_saved_ms / 1000:.1f} s"
    )


def summary_line(stats: Stats | Mapping[str, object]) -> str:
    """One line for a finished reply: the headline numbers."""
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
    """' (suffix 86%, model 50%)' when both drafter kinds drafted in the reply, else ''."""
    kinds = kind_figures(s)
    if len(kinds) < 2:
        return ""
    return " (" + ", ".join(f"{kind} {pct(rate(a, d))}" for kind, a, d in kinds) + ")"


def kind_figures(stats: Stats | Mapping[str, object]) -> list[tuple[str, int, int]]:
    """(kind, accepted, drafted) of each drafter kind that drafted something, suffix first."""
    s = stats_dict(stats)
    figures = []
    for kind, _ in DRAFTER_KINDS:
        drafted, accepted = _count(s.get(f"{kind}_drafted")), _count(s.get(f"{kind}_accepted"))
        if drafted and accepted is not None:
            figures.append((kind, accepted, drafted))
    return figures


def _count(value: object) -> int | None:
    """A stored counter, or None when missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def rate(accepted: float, drafted: float) -> float | None:
    return accepted / drafted if drafted else None


def kind_value(accepted: float, drafted: float) -> str:
    """'86% (12/14)': a drafter kind's acceptance and its counts."""
    return f"{pct(rate(accepted, drafted))} ({accepted:.0f}/{drafted:.0f})"


def stats_table(stats: Stats | Mapping[str, object]) -> list[tuple[str, str]]:
    """The reply's stats view: every labelled stat, then acceptance per drafter kind."""
    s = stats_dict(stats)
    rows = [(label, stat_value(key, s[key])) for key, label in STAT_LABELS if key in s]
    names = dict(DRAFTER_KINDS)
    kinds = [(f"acceptance, {names[k]}", kind_value(a, d)) for k, a, d in kind_figures(s)]
    at = next((i + 1 for i, (label, _) in enumerate(rows) if label == "accepted"), len(rows))
    return rows[:at] + kinds + rows[at:]


def backend_line(info: EngineInfo) -> str:
    """Backend, then each model with the layers it has offloaded (on a GPU backend)."""
    gpu = info.backend.upper() != "CPU"
    parts = [info.backend, f"target {_model(info.target, gpu)}"]
    if info.draft is not None:
        parts.append(f"draft {_model(info.draft, gpu)}")
    else:
        parts.append("no draft model" if info.mode.value == "none" else f"draft: {info.mode.value}")
    return " · ".join(parts)


def _model(model: ModelInfo, gpu: bool) -> str:
    if not gpu:
        return model.name
    return f"{model.name} ({model.n_gpu_layers}/{model.offloadable_layers} layers)"
