"""`n_gpu_layers = "auto"`: the arithmetic, target first; the devices the build sees."""

from __future__ import annotations

import pytest

from specchat.config.offload import BASE_RESERVE, Footprint, fit_layers, plan_offload, usable

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


def test_devices_come_from_the_llama_build() -> None:
    from specchat.engine.llama import devices as gpu

    devices = gpu.devices()
    assert devices and devices[0].total_bytes > 0 and devices[0].name
    if not gpu.supports_gpu_offload():
        assert gpu.backend() == "CPU" and gpu.free_vram() == 0 and not gpu.gpus()
