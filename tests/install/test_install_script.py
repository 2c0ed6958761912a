"""packaging/install.sh picks the llama.cpp backend from what the machine has (dry run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "install.sh"


def dry_run(tmp_path: Path, tools: tuple[str, ...], *args: str, cmake: str = "") -> str:
    """Run the script with a PATH holding only fake `tools` (plus the basics it needs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        fake = bin_dir / tool
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
    for basic in ("uname", "sed", "dirname"):
        target = next(Path(d) / basic for d in ("/usr/bin", "/bin") if (Path(d) / basic).exists())
        (bin_dir / basic).unlink(missing_ok=True)
        (bin_dir / basic).symlink_to(target)
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "CMAKE_ARGS": cmake,
        "CUDA_HOME": str(tmp_path / "no-cuda"),
    }
    proc = subprocess.run(
        ["/bin/bash", str(SCRIPT), "--dry-run", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="fake tools stand in for a Linux box")
@pytest.mark.parametrize(
    ("tools", "backend", "cmake"),
    [
        ((), "cpu", "CMAKE_ARGS=-DGGML_RPC=ON\n"),
        (("nvidia-smi", "nvcc"), "cuda", "CMAKE_ARGS=-DGGML_CUDA=on -DGGML_RPC=ON\n"),
        (("vulkaninfo", "glslc"), "vulkan", "CMAKE_ARGS=-DGGML_VULKAN=on -DGGML_RPC=ON\n"),
        (("nvidia-smi",), "cpu", "CMAKE_ARGS=-DGGML_RPC=ON\n"),  # no CUDA toolkit: no CUDA build
    ],
)
def test_auto_detection(tmp_path: Path, tools: tuple[str, ...], backend: str, cmake: str) -> None:
    out = dry_run(tmp_path, tools)
    assert f"backend: {backend}\n" in out and cmake in out
    if tools == ("nvidia-smi",):
        assert "CUDA toolkit (nvcc) is not" in out
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
