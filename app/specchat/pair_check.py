"""`models check` as data: what a pair is (vocabulary match, memory estimate, offload plan).

Below every front end: `specchat models check` prints the report's lines, the chat app shows
them before loading a pair opened from files. Metadata only; no weights are loaded."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from specchat.config import ModelConfig, PairConfig
from specchat.config.offload import Footprint, plan_offload
from specchat.engine.llama import devices as gpu
from specchat.errors import CROSS_VOCAB_HINT, SpecchatError, VocabMismatchError
from specchat.sources import resolve_model_files

if TYPE_CHECKING:
    from specchat.engine.llama.model import LlamaModel
    from specchat.sources.meta import GgufInfo

GB = 1e9
OVERHEAD_BYTES = 200_000_000  # per model: compute buffers, context, runtime


@dataclass
class PairReport:
    """The check's findings as lines (what `models check` prints) and the verdict."""

    name: str
    lines: list[str] = field(default_factory=list)
    error: SpecchatError | None = None  # why the pair is not usable; None = usable

    @property
    def usable(self) -> bool:
        return self.error is None


def files_pair(target: Path, draft: Path | None, cross_vocab: bool = False) -> PairConfig:
    """A pair made of two local GGUF files (the target's GPU layers planned automatically)."""
    return PairConfig(
        name="(files)",
        target=ModelConfig(path=target, n_gpu_layers="auto"),
        draft=ModelConfig(path=draft) if draft else None,
        cross_vocab=cross_vocab,
    )


def check_pair(
    pair: PairConfig,
    *,
    offline: bool = False,
    progress: bool = False,
    cancel: threading.Event | None = None,
) -> PairReport:
    """Resolve (download if needed) and inspect the pair's files. Raises SpecchatError when a
    file is missing or unreadable; a vocabulary or memory problem is the report's error."""
    paths: dict[str, list[Path]] = {}
    for role, model in (("target", pair.target), ("draft", pair.draft)):
        if model is not None:
            paths[role] = resolve_model_files(
                model, offline=offline, progress=progress, cancel=cancel
            )
    report = PairReport(pair.name)
    report.lines.append(f"pair {pair.name}" + (f": {pair.description}" if pair.description else ""))
    infos, reason = _inspect(pair, paths, report)
    usable = _vocab_line(report, "draft" in infos, reason, pair.cross_vocab)
    fits = _memory_lines(pair, infos, report)
    if not usable:
        t, d = paths["target"][0].name, paths["draft"][0].name
        report.error = VocabMismatchError(
            f"draft {d} and target {t} do not share a vocabulary: {reason}{CROSS_VOCAB_HINT}",
            settings=("cross_vocab",),
        )
    elif not fits:
        report.error = SpecchatError(
            f"pair {pair.name}: the models do not fit in this machine's memory"
        )
    return report


def _inspect(
    pair: PairConfig, paths: dict[str, list[Path]], report: PairReport
) -> tuple[dict[str, GgufInfo], str | None]:
    """Each model's metadata line, and why the vocabularies differ (None: they match)."""
    from specchat.engine.llama.compat import vocab_mismatch
    from specchat.sources.meta import gguf_info, open_vocab_only

    opened: dict[str, LlamaModel] = {}
    try:
        for role, files in paths.items():
            opened[role] = open_vocab_only(files[0])
        infos = {role: gguf_info(m, tuple(paths[role][1:])) for role, m in opened.items()}
        for role, info in infos.items():
            cfg = pair.target if role == "target" else pair.draft
            assert cfg is not None
            ctx = cfg.n_ctx or info.n_ctx_train
            report.lines.append(
                f"  {role:<7}{info.path.name}\n{'':9}{info.architecture}, {info.quantization}, "
                f"{info.size_label or '?'} params, context {info.n_ctx_train} (using {ctx}), "
                f"{info.n_layers} layers, vocab {info.n_vocab}, {info.file_bytes / 1e6:.1f} MB"
            )
        reason = vocab_mismatch(opened["target"], opened["draft"]) if "draft" in opened else None
    finally:
        for model in opened.values():
            model.close()
    return infos, reason


def _vocab_line(report: PairReport, has_draft: bool, reason: str | None, cross: bool) -> bool:
    if not has_draft:
        report.lines.append("  vocab  no draft: the target runs alone")
    elif reason is None:
        report.lines.append("  vocab  same vocabulary: token-level drafting")
    elif cross:
        report.lines.append(f"  vocab  different ({reason}): cross-vocabulary drafting is on")
    else:
        report.lines.append(f"  vocab  different ({reason})")
        return False
    return True


def _memory_lines(pair: PairConfig, infos: dict[str, GgufInfo], report: PairReport) -> bool:
    """The memory estimate and GPU offload plan; False when the pair cannot fit at all."""
    cfgs = {r: m for r, m in (("target", pair.target), ("draft", pair.draft)) if m is not None}
    prints = {
        role: Footprint(info.file_bytes, info.n_layers, info.kv_bytes(cfgs[role].n_ctx))
        for role, info in infos.items()
    }
    need = sum(fp.total_bytes + OVERHEAD_BYTES for fp in prints.values())
    available, total = gpu.system_memory()
    vram = gpu.free_vram(pair.target.main_gpu)
    line = f"  memory needs ~{need / GB:.2f} GB"
    if available:
        line += f"; {available / GB:.1f} GB of {total / GB:.1f} GB RAM available"
    if vram:
        t, d = plan_offload(vram, prints["target"], prints.get("draft"))
        planned = {"target": t, "draft": d}
        layers = {
            r: planned[r] if m.n_gpu_layers == "auto" else m.n_gpu_layers for r, m in cfgs.items()
        }
        shown = ", ".join(f"{role} {layers[role]}" for role in prints)
        line += f"; {vram / GB:.1f} GB free VRAM ({gpu.backend()}), GPU layers: {shown} (-1 = all)"
    else:
        line += f"; no GPU offload ({gpu.backend()} build)"
    report.lines.append(line)
    if available and need > available + vram:
        if need > total + vram:
            return False
        report.lines.append(
            "  warning: less memory is free now than the pair needs; close other programs"
        )
    return True
