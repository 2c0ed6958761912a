"""From a models.toml pair and its local files to the engine's ModelSettings and SpecSettings.

"auto" offload reads each GGUF's size and layers (sources.meta) and the free VRAM, so this sits
above both config and sources (config never imports sources)."""

from __future__ import annotations

from pathlib import Path

from specchat.config.offload import Footprint, fit_layers, plan_offload, usable
from specchat.config.schema import ModelConfig, PairConfig
from specchat.engine.llama import devices as gpu
from specchat.engine.types import DraftMode, ModelSettings, SpecSettings
from specchat.sources.hf import split_parts
from specchat.sources.meta import read_gguf_info


def footprint(path: Path, n_ctx: int) -> Footprint:
    info = read_gguf_info(path, _split_parts(path))
    return Footprint(info.file_bytes, info.n_layers, info.kv_bytes(n_ctx))


def _split_parts(path: Path) -> tuple[Path, ...]:
    """The other parts of a split GGUF (name-00001-of-0000N.gguf), for its total size."""
    names = split_parts(path.name)
    return tuple(path.with_name(n) for n in names[1:]) if names[0] == path.name else ()


def _settings(model: ModelConfig, path: Path, n_gpu_layers: int) -> ModelSettings:
    return ModelSettings(
        path=Path(path),
        n_ctx=model.n_ctx,
        n_gpu_layers=n_gpu_layers,
        n_threads=model.n_threads,
        flash_attn=model.flash_attn,
        main_gpu=model.main_gpu,
        use_extra_bufts=model.use_extra_bufts,
    )


def to_model_settings(
    model: ModelConfig, path: Path, *, free_vram: int | None = None
) -> ModelSettings:
    """Load settings for one model; "auto" offload fits free VRAM (0 on a CPU-only build)."""
    ngl = model.n_gpu_layers
    if ngl == "auto":
        free = gpu.free_vram(model.main_gpu) if free_vram is None else free_vram
        ngl = plan_offload(free, footprint(path, model.n_ctx))[0] if free > 0 else 0
    return _settings(model, path, int(ngl))


def to_pair_settings(
    pair: PairConfig, target_path: Path, draft_path: Path | None, *, free_vram: int | None = None
) -> tuple[ModelSettings, ModelSettings | None]:
    """Both models' settings; with "auto" the target is offloaded first, the draft gets the rest."""
    t_cfg, d_cfg = pair.target, pair.draft
    if d_cfg is None or draft_path is None:
        return to_model_settings(t_cfg, target_path, free_vram=free_vram), None
    auto_t, auto_d = t_cfg.n_gpu_layers == "auto", d_cfg.n_gpu_layers == "auto"
    free = 0
    if auto_t or auto_d:
        free = gpu.free_vram(t_cfg.main_gpu) if free_vram is None else free_vram
    t_fp = footprint(target_path, t_cfg.n_ctx) if free > 0 and auto_t else None
    d_fp = footprint(draft_path, d_cfg.n_ctx) if free > 0 and auto_d else None
    if t_fp is not None:
        t_ngl, d_ngl = plan_offload(free, t_fp, d_fp)
    else:
        t_ngl = int(t_cfg.n_gpu_layers) if not auto_t else 0
        if d_fp is not None and not auto_t:
            # the target's fixed layers come first: estimate what they take
            fixed = footprint(target_path, t_cfg.n_ctx)
            taken = fixed.total_bytes if t_ngl < 0 else int(t_ngl * fixed.layer_bytes)
            d_ngl = fit_layers(d_fp, usable(free) - taken)
        else:
            d_ngl = 0
    return (
        _settings(t_cfg, target_path, t_ngl),
        _settings(d_cfg, draft_path, d_ngl if auto_d else int(d_cfg.n_gpu_layers)),
    )


def to_spec_settings(pair: PairConfig) -> SpecSettings:
    return SpecSettings(
        mode=DraftMode.MODEL if pair.draft is not None else DraftMode.NONE,
        draft_max=pair.draft_max,
        draft_min=pair.draft_min,
        suffix_max=pair.suffix_max,
        p_min=pair.p_min,
        adaptive=pair.adaptive,
        cross_vocab=pair.cross_vocab,
    )
