"""Text for the engine's numbers. Only formatting: every value is the engine's own Stats field."""

from __future__ import annotations

from collections.abc import Mapping

from specchat.engine.types import EngineInfo, ModelInfo, Stats

# $text picks black or white for contrast against the tinted background, in any theme
# (measured: 6.8:1 or better in the built-in themes); target tokens are also underlined,
# so the two origins differ without relying on colour alone.
DRAFT_STYLE = "$text on $success-muted"
TARGET_STYLE = "$text on $primary-muted underline"
ORIGIN_STYLES = {"draft": DRAFT_STYLE, "target": TARGET_STYLE}

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


def summary_line(stats: Stats | Mapping[str, object]) -> str:
    """One line for a finished reply: the headline numbers."""
    s = stats_dict(stats)
    parts = [
        f"{num(s.get('tokens_per_second'))} tok/s",
        f"{s.get('generated_tokens', 0)} tokens",
    ]
    if s.get("mode", "none") != "none":
        parts += [
            f"acceptance {pct(s.get('acceptance_rate'))}",
            f"{num(s.get('tokens_per_pass'), 2)} tok/pass",
        ]
    parts.append(f"TTFT {num(s.get('ttft_ms'), 0)} ms")
    return " · ".join(parts)


def stats_table(stats: Stats | Mapping[str, object]) -> list[tuple[str, str]]:
    s = stats_dict(stats)
    return [(label, stat_value(key, s[key])) for key, label in STAT_LABELS if key in s]


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
    return f"{model.name} ({model.n_gpu_layers}/{model.n_layers} layers)" if gpu else model.name
