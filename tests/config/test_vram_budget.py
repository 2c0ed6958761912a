"""SPECCHAT_VRAM_BUDGET caps the GPU memory that "auto" offload plans with."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.config.offload import plan_offload
from specchat.config.schema import ModelConfig, PairConfig
from specchat.engine.llama import devices
from specchat.errors import SpecchatError
from specchat.pair_settings import to_pair_settings

GIB = 1 << 30


@pytest.mark.parametrize(
    ("text", "size"),
    [("1073741824", GIB), ("1.5G", 3 * GIB // 2), ("300M", 300 << 20), ("300MiB", 300 << 20),
     ("2gb", 2 * GIB), (" 64k ", 64 << 10)],
)
def test_sizes(monkeypatch, text: str, size: int) -> None:
    monkeypatch.setenv("SPECCHAT_VRAM_BUDGET", text)
    assert devices.vram_budget() == size


@pytest.mark.parametrize("text", ["1.5x", "lots", "-1G", "G"])
def test_bad_size_is_one_clear_error(monkeypatch, text: str) -> None:
    monkeypatch.setenv("SPECCHAT_VRAM_BUDGET", text)
    with pytest.raises(SpecchatError, match=r"SPECCHAT_VRAM_BUDGET=.* is not a size"):
        devices.free_vram()


def fake_gpu(monkeypatch, free: int) -> None:
    gpu = devices.Device(1, "Vulkan0", "a GPU", "GPU", free, 2 * free)
    monkeypatch.setattr(devices, "supports_gpu_offload", lambda: True)
    monkeypatch.setattr(devices, "gpus", lambda: [gpu])


def test_the_budget_caps_free_memory(monkeypatch) -> None:
    fake_gpu(monkeypatch, 8 * GIB)
    assert devices.free_vram() == 8 * GIB
    monkeypatch.setenv("SPECCHAT_VRAM_BUDGET", "1G")
    assert devices.free_vram() == GIB
    monkeypatch.setenv("SPECCHAT_VRAM_BUDGET", "64G")  # more than there is: what is free
    assert devices.free_vram() == 8 * GIB


@pytest.mark.real
def test_a_small_budget_splits_the_target(monkeypatch, real_models: dict[str, Path]) -> None:
    """The planner's split for a budget is the one "auto" loads with."""
    from specchat.pair_settings import footprint

    fake_gpu(monkeypatch, 8 * GIB)
    pair = PairConfig(target=ModelConfig(path="t", n_ctx=512),
                      draft=ModelConfig(path="d", n_ctx=512))
    qwen, smol = real_models["qwen"], real_models["smollm2"]
    t, d = to_pair_settings(pair, qwen, smol)
    assert (t.n_gpu_layers, d is not None and d.n_gpu_layers) == (-1, -1)
    budget = 900 << 20
    monkeypatch.setenv("SPECCHAT_VRAM_BUDGET", str(budget))
    t, d = to_pair_settings(pair, qwen, smol)
    expected = plan_offload(budget, footprint(qwen, 512), footprint(smol, 512))
    assert d is not None and (t.n_gpu_layers, d.n_gpu_layers) == expected
    assert 0 < t.n_gpu_layers < 24
