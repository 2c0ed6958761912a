"""packaging/gpu-check/run.sh: its refusals (quick) and a whole --cpu run on a tiny synthetic pair
(real llama.cpp: the installed llama_cpp, no build), whose bench JSON is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "packaging" / "gpu-check" / "run.sh"
ENGINE_MODES = {"target", "k=2", "k=4", "adaptive", "lookup"}


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60):
    full_env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, check=False)


def test_needs_an_output_folder() -> None:
    proc = run([])
    assert proc.returncode == 2 and "--out DIR is required" in proc.stderr


def test_unknown_option(tmp_path: Path) -> None:
    proc = run(["--out", str(tmp_path), "--frobnicate"])
    assert proc.returncode == 2 and "unknown option --frobnicate" in proc.stderr


def test_gpu_mode_without_nvidia_smi_says_so(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "tee", "sed", "nproc", "cat", "mkdir"):
        found = next(Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists())
        (bin_dir / tool).symlink_to(found)
    proc = run(["--out", str(tmp_path / "out")], env={"PATH": str(bin_dir)})
    assert proc.returncode == 2
    assert "nvidia-smi not found (--cpu runs without a GPU)" in proc.stdout + proc.stderr


def test_gpu_mode_without_the_carried_source_says_how_to_get_it(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'Fake GPU, 9.0, 1 MiB, 1'\n")
    smi.chmod(0o755)
    nvcc = fake / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0'\n")
    nvcc.chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}"}
    proc = run(["--out", str(tmp_path / "out"), "--build-dir", str(tmp_path / "b")], env=env)
    if not (ROOT / "packaging" / "gpu-check" / "carry" / "llama-cpp-python-src.tar.gz").exists():
        assert proc.returncode == 2 and "prepare.sh" in proc.stdout + proc.stderr
    else:  # prepared here: the fake nvcc cannot build, the run must still fail cleanly
        assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr


def test_build_goes_with_cpu(tmp_path: Path) -> None:
    proc = run(["--out", str(tmp_path), "--build"])
    assert proc.returncode == 2 and "--build goes with --cpu" in proc.stderr


def test_carried_files_are_ignored_by_git() -> None:
    for path in ("packaging/gpu-check/carry/wheels/x.whl", "packaging/gpu-check/build/bin/x"):
        proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        if proc.returncode == 128:
            pytest.skip("not a git checkout")
        assert proc.returncode == 0, path


def _modes(doc: dict) -> dict[str, dict]:
    return {m["mode"]: m for m in doc["modes"]}


@pytest.mark.slow
def test_cpu_run_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    proc = run(["--cpu", "--no-native", "--out", str(out), "--build-dir", str(tmp_path / "b")],
               timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "random weights are fine for timing" in proc.stdout
    docs = {pair: json.loads((out / f"bench-{pair}.json").read_text()) for pair in ("a1", "a08")}
    for pair, doc in docs.items():
        assert (out / f"bench-{pair}.png").stat().st_size > 0
        settings = doc["settings"]
        assert settings["target"].endswith(f"target-{pair}.gguf")
        assert settings["draft"].endswith("draft-64x2-f32.gguf")
        assert settings["n_gpu_layers"] == 0
        modes = _modes(doc)
        assert set(modes) >= ENGINE_MODES
        for name in ENGINE_MODES:  # greedy: every mode wrote what the target alone wrote
            assert modes[name]["compared"] == 3 and modes[name]["identical"] == 3, name
            assert modes[name]["tokens_per_second"]["median"] > 0
        assert doc["physics"]["c"] > 0
    a1, a08 = _modes(docs["a1"]), _modes(docs["a08"])
    assert a1["k=2"]["acceptance_rate"] == 1.0  # epsilon 0: the target's logits are the draft's
    assert a08["k=2"]["acceptance_rate"] < 1.0
    summary = (out / "summary.txt").read_text()
    assert "pair agreement 1.0" in summary and "phase timings" in summary
    assert "GPU seen no" in (out / "doctor.txt").read_text()
    assert "FAILED" not in (out / "run.log").read_text()
