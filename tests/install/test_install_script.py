"""packaging/install.sh picks the llama.cpp backend from what the machine has (dry run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from install.fake_machine import DISCRETE_GPU, SCRIPT, Machine


def dry_run(tmp_path: Path, tools: tuple[str, ...], *args: str, cmake: str = "") -> str:
    """Run the script with a PATH holding only fake `tools` (plus the basics it needs)."""
    machine = Machine(tmp_path)
    for tool in tools:
        machine.tool(tool)
    proc = machine.run("--dry-run", *args, cmake=cmake)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="fake tools stand in for a Linux box")
@pytest.mark.parametrize(
    ("setup", "backend", "cmake", "said"),
    [
        (lambda m: m, "cpu", "CMAKE_ARGS=-DGGML_RPC=ON\n", ""),
        (lambda m: m.tool("nvidia-smi").tool("c++").cuda_toolkit(), "cuda",
         "CMAKE_ARGS=-DGGML_CUDA=on -DGGML_RPC=ON\n", ""),
        (lambda m: m.tool("vulkaninfo", DISCRETE_GPU).tool("c++").vulkan_sdk(), "vulkan",
         "CMAKE_ARGS=-DGGML_VULKAN=on -DGGML_RPC=ON\n", ""),
        (lambda m: m.tool("nvidia-smi").tool("c++"), "cpu", "CMAKE_ARGS=-DGGML_RPC=ON\n",
         "not building for cuda: this machine has the hardware, but its build needs nvcc"),
        (lambda m: m.tool("nvidia-smi").tool("c++").cuda_toolkit(cublas=False), "cpu",
         "CMAKE_ARGS=-DGGML_RPC=ON\n", "needs cuBLAS"),
    ],
    ids=["nothing", "cuda", "vulkan", "nvidia-without-toolkit", "toolkit-without-cublas"],
)
def test_auto_detection(tmp_path: Path, setup, backend: str, cmake: str, said: str) -> None:
    proc = setup(Machine(tmp_path)).run("--dry-run")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"backend: {backend}\n" in out and cmake in out
    assert said in out
    assert "--no-cache-dir" in out  # never a cached wheel built with other CMAKE_ARGS


def test_forced_backend_keeps_user_flags(tmp_path: Path) -> None:
    out = dry_run(tmp_path, ("pipx",), "--backend", "metal", cmake="-DFOO=1")
    assert "CMAKE_ARGS=-DGGML_METAL=on -DFOO=1" in out
    assert "install: pipx install --force --pip-args=--no-cache-dir" in out


def test_bad_backend_is_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["/bin/bash", str(SCRIPT), "--backend", "tpu", "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "unknown backend 'tpu'" in proc.stderr
