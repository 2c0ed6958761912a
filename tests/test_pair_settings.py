"""From a models.toml pair and its local files to the engine's settings: "auto" offload from
the free VRAM (target first), fixed layer counts kept, the pair's speculation defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat import pair_settings
from specchat.config import ModelConfig, PairConfig
from specchat.config.offload import Footprint, plan_offload
from specchat.engine.types import DraftMode
from specchat.pair_settings import to_model_settings, to_pair_settings, to_spec_settings

GB = 10**9
QWEN7B = Footprint(weight_bytes=4_680_000_000, n_layers=28, kv_bytes=234_881_024)
QWEN05B = Footprint(weight_bytes=531_000_000, n_layers=24, kv_bytes=50_331_648)


@pytest.fixture
def fake_footprints(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"t.gguf": QWEN7B, "d.gguf": QWEN05B}
    monkeypatch.setattr(pair_settings, "footprint", lambda path, n_ctx: sizes[Path(path).name])


def pair(**target: object) -> PairConfig:
    return PairConfig(
        name="p",
        target=ModelConfig(path=Path("t.gguf"), **target),
        draft=ModelConfig(path=Path("d.gguf")),
        draft_max=5,
        p_min=0.25,
        cross_vocab=True,
    )


def test_auto_is_zero_on_a_cpu_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pair_settings.gpu, "free_vram", lambda main_gpu=0: 0)
    s = to_model_settings(ModelConfig(path=Path("t.gguf"), n_ctx=1024, n_threads=3), Path("t.gguf"))
    assert (s.n_gpu_layers, s.n_ctx, s.n_threads, s.use_extra_bufts) == (0, 1024, 3, False)
    t, d = to_pair_settings(pair(), Path("t.gguf"), Path("d.gguf"))
    assert t.n_gpu_layers == 0 and d is not None and d.n_gpu_layers == 0


def test_auto_uses_free_vram_target_first(fake_footprints: None) -> None:
    t, d = to_pair_settings(pair(), Path("t.gguf"), Path("d.gguf"), free_vram=5 * GB)
    assert d is not None
    assert (t.n_gpu_layers, d.n_gpu_layers) == plan_offload(5 * GB, QWEN7B, QWEN05B)
    single = to_model_settings(ModelConfig(path=Path("t.gguf")), Path("t.gguf"), free_vram=24 * GB)
    assert single.n_gpu_layers == -1


def test_fixed_target_layers_are_kept_and_counted(fake_footprints: None) -> None:
    t, d = to_pair_settings(
        pair(n_gpu_layers=-1, flash_attn=True, main_gpu=1),
        Path("t.gguf"),
        Path("d.gguf"),
        free_vram=6 * GB,
    )
    assert d is not None and t.n_gpu_layers == -1 and t.flash_attn is True and t.main_gpu == 1
    assert d.n_gpu_layers == plan_offload(6 * GB, QWEN7B, QWEN05B)[1]  # what the target leaves
    t, d = to_pair_settings(pair(n_gpu_layers=0), Path("t.gguf"), Path("d.gguf"), free_vram=2 * GB)
    assert t.n_gpu_layers == 0 and d is not None and d.n_gpu_layers == -1


def test_spec_settings() -> None:
    spec = to_spec_settings(pair())
    assert (spec.mode, spec.draft_max, spec.p_min, spec.cross_vocab, spec.adaptive) == (
        DraftMode.MODEL,
        5,
        0.25,
        True,
        True,
    )
    alone = PairConfig(name="x", target=ModelConfig(path=Path("t.gguf")))
    assert to_spec_settings(alone).mode == DraftMode.NONE


@pytest.mark.real
def test_auto_offload_reads_the_real_gguf(real_models: dict[str, Path]) -> None:
    qwen = real_models["qwen"]  # 491 MB, 24 layers, 2 KV heads of 64
    fp = pair_settings.footprint(qwen, 4096)
    assert (fp.weight_bytes, fp.n_layers, fp.kv_bytes) == (
        491_400_064,
        24,
        2 * 4096 * 24 * 2 * 64 * 2,
    )
    cfg = ModelConfig(path=qwen)
    assert to_model_settings(cfg, qwen, free_vram=8 * GB).n_gpu_layers == -1
    assert 0 < to_model_settings(cfg, qwen, free_vram=GB).n_gpu_layers < 24
