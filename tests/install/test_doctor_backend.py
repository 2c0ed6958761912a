"""`specchat doctor` says which backend the llama.cpp build has and whether it sees a GPU."""

from __future__ import annotations

import pytest

from specchat.commands.doctor import (
    BuildInfo,
    _build_lines,
    _registries,
    _registries_from_system_info,
    build_lines,
)


def test_cuda_build_that_sees_its_gpu() -> None:
    build = BuildInfo((("CUDA", 1), ("CPU", 1)), ("CUDA0",), offload=True)
    lines = build_lines(build, nvidia_gpu=True, apple_silicon=False)
    assert lines == ["llama.cpp     backend CUDA (built with CUDA, CPU), GPU seen yes (CUDA0), "
                     "GPU offload yes"]


def test_cuda_build_without_a_visible_gpu_says_so() -> None:
    build = BuildInfo((("CUDA", 0), ("CPU", 1)), (), offload=True)
    first, hint = build_lines(build, nvidia_gpu=False, apple_silicon=False)
    assert "backend CUDA (built with CUDA, CPU)" in first and "GPU seen no" in first
    assert "has CUDA but sees no GPU" in hint


def test_cpu_build_on_an_nvidia_machine_gets_the_rebuild_hint() -> None:
    build = BuildInfo((("CPU", 1),), (), offload=False)
    first, hint = build_lines(build, nvidia_gpu=True, apple_silicon=False)
    assert first.startswith("llama.cpp     backend CPU (built with CPU), GPU seen no")
    assert "--backend cuda" in hint
    mac = build_lines(build, nvidia_gpu=False, apple_silicon=True)
    assert "--backend metal" in mac[1]
    assert build_lines(build, nvidia_gpu=False, apple_silicon=False)[1:] == []


def test_rpc_only_build_says_offload_goes_to_rpc_servers() -> None:
    """llama.cpp reports GPU offload for a CPU build with RPC: the doctor says where it goes."""
    build = BuildInfo((("RPC", 0), ("CPU", 1)), (), offload=True)
    (first,) = build_lines(build, nvidia_gpu=False, apple_silicon=False)
    assert first.endswith("GPU seen no, GPU offload to RPC servers only")


@pytest.mark.parametrize(
    ("name", "shown"), [("MTL", "Metal"), ("Vulkan", "Vulkan"), ("ROCm", "ROCm"), ("BLAS", "CPU")]
)
def test_backend_names(name: str, shown: str) -> None:
    assert BuildInfo(((name, 1), ("CPU", 1)), (), offload=False).backend == shown


def test_system_info_fallback() -> None:
    info = "CUDA : ARCHS = 900 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX = 1"
    assert _registries_from_system_info(info) == (("CUDA", -1), ("CPU", -1))
    assert _registries_from_system_info("CPU : SSE3 = 1 | AVX2 = 1") == (("CPU", -1),)


def test_this_build_is_reported_from_its_registry() -> None:
    """The installed llama-cpp-python (CPU-only here and in CI): its ggml registry lists CPU, and
    the doctor's first line says so."""
    pytest.importorskip("llama_cpp")
    lines = _build_lines()
    names = [n for n, _ in _registries()]
    assert "CPU" in names
    assert lines[0].startswith("llama.cpp     backend ")
    assert f"(built with {', '.join(names)})" in lines[0]
    if names == ["CPU"]:
        assert "backend CPU" in lines[0] and "GPU seen no" in lines[0]


def test_vulkan_build_that_sees_a_device_names_it() -> None:
    build = BuildInfo((("Vulkan", 1), ("RPC", 0), ("CPU", 1)), ("Vulkan0",), offload=True,
                      compiled=("Vulkan",))
    assert build_lines(build, nvidia_gpu=False, apple_silicon=False) == [
        "llama.cpp     backend Vulkan (built with Vulkan, RPC, CPU), GPU seen yes (Vulkan0), "
        "GPU offload yes"]


def test_vulkan_build_without_a_driver_still_says_vulkan() -> None:
    """With no Vulkan driver (ICD) the backend leaves ggml's registry at start-up: the doctor
    still names the build's backend, from its libraries, and says where to look."""
    build = BuildInfo((("RPC", 0), ("CPU", 1)), (), offload=True, compiled=("Vulkan",))
    first, hint = build_lines(build, nvidia_gpu=False, apple_silicon=False)
    assert first.startswith(
        "llama.cpp     backend Vulkan (built with RPC, CPU, Vulkan), GPU seen no")
    assert "vulkaninfo --summary" in hint and "GGML_VK_VISIBLE_DEVICES=0" in hint


def test_vulkan_build_with_only_a_cpu_device_gets_the_visible_devices_hint() -> None:
    build = BuildInfo((("Vulkan", 0), ("CPU", 1)), (), offload=True, compiled=("Vulkan",))
    _, hint = build_lines(build, nvidia_gpu=False, apple_silicon=False)
    assert hint.startswith("  hint: this build has Vulkan but sees no GPU: check the driver")
    assert "llvmpipe" in hint
