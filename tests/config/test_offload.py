"""`n_gpu_layers = "auto"`: the arithmetic, target first, and the conversion to engine settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.config import ModelConfig, PairConfig, settings, to_model_settings, to_spec_settings
from specchat.config.offload import BASE_RESERVE, Footprint, fit_layers, plan_offload, usable
from specchat.config.settings import to_pair_settings
from specchat.engine.types import DraftMode

GB = 10**9
# Qwen2.5-7B Q4_K_M: 4.68 GB, 28 layers, 4 KV heads of 128 -> 2*4096*28*4*128*2 B of KV at 4096
QWEN7B = Footprint(weight_bytes=4_680_000_000, n_layers=28, kv_bytes=234_881_024)
QWEN05B = Footprint(weight_bytes=531_000_000, n_layers=24, kv_bytes=50_331_648)


def test_everything_fits_on_a_big_gpu() -> None:
    assert fit_layers(QWEN7B, usable(24 * GB)) == -1
    assert plan_offload(24 * GB, QWEN7B, QWEN05B) == (-1, -1)


def test_nothing_without_free_vram() -> None:
    assert plan_offload(0, QWEN7B, QWEN05B) == (0, 0)
    assert plan_offload(BASE_RESERVE, QWEN7B) == (0, 0)  # the reserve is never handed out


@pytest.mark.parametrize("free_gb", [2, 3, 4, 5])
def test_partial_offload_is_the_most_layers_that_fit(free_gb: int) -> None:
    budget = usable(free_gb * GB)
    t, _ = plan_offload(free_gb * GB, QWEN7B)
    assert 0 < t < QWEN7B.n_layers
    assert t * QWEN7B.layer_bytes <= budget < (t + 1) * QWEN7B.layer_bytes


def test_target_first_then_draft_gets_the_rest() -> None:
    # 5 GB: the 7B target does not fit whole; it takes what it can, the draft gets the remainder
    t, d = plan_offload(5 * GB, QWEN7B, QWEN05B)
    assert 0 < t < QWEN7B.n_layers
    left = usable(5 * GB) - t * QWEN7B.layer_bytes
    assert left < QWEN7B.layer_bytes and d == int(left // QWEN05B.layer_bytes)
    # 7 GB: the whole target fits, and the draft too
    assert plan_offload(7 * GB, QWEN7B, QWEN05B) == (-1, -1)
    # 6 GB: target whole, the draft only partly
    t, d = plan_offload(6 * GB, QWEN7B, QWEN05B)
    assert t == -1 and 0 < d < QWEN05B.n_layers


def test_layer_bytes_include_the_kv_cache() -> None:
    longer = Footprint(QWEN7B.weight_bytes, QWEN7B.n_layers, QWEN7B.kv_bytes * 8)
    assert plan_offload(4 * GB, longer)[0] < plan_offload(4 * GB, QWEN7B)[0]


@pytest.fixture
def fake_footprints(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"t.gguf": QWEN7B, "d.gguf": QWEN05B}
    monkeypatch.setattr(settings, "footprint", lambda path, n_ctx: sizes[Path(path).name])


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
    monkeypatch.setattr(settings.gpu, "free_vram", lambda main_gpu=0: 0)
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


def test_devices_come_from_the_llama_build() -> None:
    from specchat.engine import devices as gpu

    devices = gpu.devices()
    assert devices and devices[0].total_bytes > 0 and devices[0].name
    if not gpu.supports_gpu_offload():
        assert gpu.backend() == "CPU" and gpu.free_vram() == 0 and not gpu.gpus()


@pytest.mark.real
def test_auto_offload_reads_the_real_gguf(real_models: dict[str, Path]) -> None:
    qwen = real_models["qwen"]  # 491 MB, 24 layers, 2 KV heads of 64
    fp = settings.footprint(qwen, 4096)
    assert (fp.weight_bytes, fp.n_layers, fp.kv_bytes) == (
        491_400_064,
        24,
        2 * 4096 * 24 * 2 * 64 * 2,
    )
    cfg = ModelConfig(path=qwen)
    assert to_model_settings(cfg, qwen, free_vram=8 * GB).n_gpu_layers == -1
    assert 0 < to_model_settings(cfg, qwen, free_vram=GB).n_gpu_layers < 24
