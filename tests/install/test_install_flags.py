"""packaging/install.sh refuses llama.cpp's old LLAMA_* backend option names in CMAKE_ARGS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "install.sh"


def dry_run(cmake: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CMAKE_ARGS": cmake}
    return subprocess.run(["/bin/bash", str(SCRIPT), "--dry-run", "--backend", "cpu", *args],
                          env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("old", "new"),
    [("LLAMA_CUBLAS", "GGML_CUDA"), ("LLAMA_CUDA", "GGML_CUDA"), ("LLAMA_METAL", "GGML_METAL"),
     ("LLAMA_VULKAN", "GGML_VULKAN"), ("LLAMA_HIPBLAS", "GGML_HIP")],
)
def test_old_flag_names_are_refused(old: str, new: str) -> None:
    proc = dry_run(f"-DCMAKE_CUDA_ARCHITECTURES=86 -D{old}=on")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"install.sh: CMAKE_ARGS uses -D{old}, which llama.cpp renamed -D{new}")


def test_current_names_pass() -> None:
    proc = dry_run("-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=native")
    assert proc.returncode == 0, proc.stderr
    assert "CMAKE_ARGS=-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=native" in proc.stdout
