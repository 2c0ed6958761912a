"""The `vulkan` tests run on a llama-cpp-python built with Vulkan that sees a Vulkan device:
packaging/vulkan-check.sh builds one (cached) and runs them on Mesa's lavapipe. Elsewhere they
are skipped, or fail with one line saying what is missing when SPECCHAT_REQUIRE_VULKAN is set (the
check script sets it: a build without the backend, or a device that is gone, is a failure there).

Helpers read llama.cpp's own load log (SPECCHAT_LLAMA_LOG=1 sends it to stderr) to compare what
specchat reports with what llama.cpp placed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASSIGNED = re.compile(r"load_tensors: layer +(\d+) assigned to device (\S+),")
OFFLOADED = re.compile(r"load_tensors: offloaded (\d+)/(\d+) layers to GPU")
BUFFER = re.compile(r"load_tensors: +(\S+) model buffer size = +([\d.]+) MiB")


@pytest.fixture(scope="session")
def vulkan_device() -> str:
    """The Vulkan device the build sees ("Vulkan0"), or a skip (a failure where required)."""
    problem = _vulkan_problem()
    if problem is None:
        from specchat.engine.llama.devices import gpus

        return gpus()[0].name
    if os.environ.get("SPECCHAT_REQUIRE_VULKAN"):
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


def _vulkan_problem() -> str | None:
    try:
        import llama_cpp  # noqa: F401
    except Exception as exc:
        return f"llama_cpp cannot be imported: {exc}"
    from specchat.engine.llama.devices import built_with, gpus

    if "Vulkan" not in built_with():
        return ("this llama-cpp-python build has no Vulkan backend (built with: "
                f"{', '.join(built_with()) or 'CPU only'}): run packaging/vulkan-check.sh")
    if not any(d.name.startswith("Vulkan") for d in gpus()):
        return ("the Vulkan build sees no Vulkan device: lavapipe needs mesa-vulkan-drivers and "
                "GGML_VK_VISIBLE_DEVICES=0 (packaging/vulkan-check.sh sets it)")
    return None


@dataclass(frozen=True)
class Placed:
    """One model's placement as llama.cpp's load log tells it."""

    on_gpu: int  # layers (output layer included) assigned to a device other than the CPU
    devices: frozenset[str]
    summary: tuple[int, int]  # "offloaded X/Y layers to GPU"
    buffers: dict[str, float]  # MiB of weights per buffer ("CPU_Mapped", "Vulkan0")


def placements(log: str) -> list[Placed]:
    """Each model's placement, in load order (a model's part of the log starts with its
    loader's "loaded meta data" line)."""
    found = []
    for part in re.split(r"(?=llama_model_loader: loaded meta data)", log)[1:]:
        layers = {int(m.group(1)): m.group(2) for m in ASSIGNED.finditer(part)}
        summary = OFFLOADED.search(part)
        if summary is None:  # a vocabulary-only load (a cross-vocabulary draft's tokenizer)
            continue
        gpu = {i: d for i, d in layers.items() if d != "CPU"}
        buffers = {m.group(1): float(m.group(2)) for m in BUFFER.finditer(part)}
        found.append(Placed(len(gpu), frozenset(gpu.values()),
                            (int(summary.group(1)), int(summary.group(2))), buffers))
    return found


def tensor_mib(path: Path, *names: str) -> float:
    """MiB the named tensors take in the GGUF file."""
    import gguf

    reader = gguf.GGUFReader(path)
    return sum(t.n_bytes for t in reader.tensors if t.name in names) / (1 << 20)


def specchat(*args: str, env: dict[str, str] | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`specchat ARGS` from this checkout, in a process of its own."""
    full = {**os.environ, "PYTHONPATH": str(ROOT / "app"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "specchat", *args], capture_output=True,
                          text=True, env=full, timeout=timeout, check=False)
