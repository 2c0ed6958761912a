"""How the app shows where tokens came from and what is loaded. (The stats' text is
specchat.stats_format, shared with `ask` and the export.)"""

from __future__ import annotations

from textual.content import Content

from specchat.engine.types import EngineInfo, ModelInfo

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


def origin_of(origin: str, drafter: str = "") -> str:
    """The saved origin of one token: the engine's origin, a draft told apart by its drafter."""
    if origin != DRAFT:
        return origin
    return drafter if drafter in (SUFFIX, MODEL) else DRAFT


def origin_legend() -> Content:
    """The three origins, each in its own style."""
    return Content(" ").join(Content.styled(f" {name} ", style) for name, style in ORIGIN_LEGEND)


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
