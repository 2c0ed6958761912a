"""packaging/install.sh never leaves a user with nothing: a GPU backend's build needs (versions
included) are checked before it is chosen, a failed GPU build is explained in one paragraph and
replaced by the CPU build (auto) or stops with the command for it (a backend asked for by name),
and each llama-cpp-python build is made once and reused. Fake tools stand in for the compilers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from install.fake_machine import COMPILER_ERROR, DISCRETE_GPU, LLVMPIPE, Machine

pytestmark = pytest.mark.skipif(os.uname().sysname != "Linux", reason="fake Linux tools")


def vulkan_machine(tmp_path: Path, headers: str = "1.4.309", glslc: bool = True) -> Machine:
    return (Machine(tmp_path).tool("vulkaninfo", DISCRETE_GPU).tool("c++")
            .vulkan_sdk(headers, glslc=glslc))


def test_old_vulkan_headers_are_found_before_the_build(tmp_path: Path) -> None:
    proc = vulkan_machine(tmp_path, headers="1.3.239").run("--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "backend: cpu\n" in proc.stdout
    sdk = tmp_path / "vulkan-sdk" / "include"
    assert (f"install.sh: not building for vulkan: this machine has the hardware, but its build "
            f"needs Vulkan headers 1.3.272 or newer: {sdk} has 1.3.239") in proc.stderr
    assert "--backend vulkan installs what it can itself" in proc.stderr


def test_missing_glslc_is_named(tmp_path: Path) -> None:
    proc = vulkan_machine(tmp_path, glslc=False).run("--dry-run")
    assert "backend: cpu\n" in proc.stdout
    assert "its build needs glslc, the GLSL shader compiler" in proc.stderr


def test_a_cpu_only_vulkan_device_is_not_a_gpu(tmp_path: Path) -> None:
    proc = vulkan_machine(tmp_path).tool("vulkaninfo", LLVMPIPE).run("--dry-run")
    assert "backend: cpu\n" in proc.stdout
    assert "the only Vulkan device here is a CPU one" in proc.stderr


def test_failed_gpu_build_installs_the_cpu_build(tmp_path: Path) -> None:
    machine = vulkan_machine(tmp_path).builds(fail_on="-DGGML_VULKAN=on")
    proc = machine.run()
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "build of llama-cpp-python" in line]
    assert len(said) == 1  # one paragraph: what failed, why, the log, what happens instead
    assert said[0].startswith("install.sh: the vulkan build of llama-cpp-python 0.3.36 failed: "
                              f"{COMPILER_ERROR} (full log: {tmp_path}/cache/llama-cpp-python/")
    assert "Installing the CPU build instead" in said[0]
    assert "rerun with --backend vulkan" in said[0]
    builds = [line for line in machine.logged() if line.startswith("wheel ")]
    assert builds == ["wheel -DGGML_VULKAN=on -DGGML_RPC=ON", "wheel -DGGML_RPC=ON"]
    (install,) = [line for line in machine.logged() if line.startswith("pipx ")]
    assert "find-links=" + str(tmp_path / "cache" / "llama-cpp-python" / "0.3.36-cpu-") in install
    assert install.endswith("constraint=llama-cpp-python==0.3.36")
    assert "backend: cpu\n" in proc.stdout


def test_failed_build_of_a_named_backend_stops_with_the_cpu_command(tmp_path: Path) -> None:
    machine = vulkan_machine(tmp_path).builds(fail_on="-DGGML_VULKAN=on")
    proc = machine.run("--backend", "vulkan")
    assert proc.returncode == 1
    assert COMPILER_ERROR in proc.stderr and "Nothing was installed" in proc.stderr
    assert proc.stderr.rstrip().endswith("install.sh --backend cpu")
    assert not [line for line in machine.logged() if line.startswith("pipx ")]


def test_named_backend_without_its_tools_says_what_is_missing(tmp_path: Path) -> None:
    """No apt-get here: nothing can be installed for it, so the script stops before building."""
    proc = vulkan_machine(tmp_path, glslc=False).builds().run("--backend", "vulkan")
    assert proc.returncode == 1
    first, cpu = proc.stderr.strip().splitlines()
    assert first.startswith("install.sh: cannot build for vulkan: it needs glslc, the GLSL shader "
                            "compiler (Debian/Ubuntu glslc")
    assert cpu.endswith("install.sh --backend cpu")


def test_a_build_is_made_once_then_reused(tmp_path: Path) -> None:
    machine = vulkan_machine(tmp_path).builds()
    assert machine.run().returncode == 0
    assert machine.run().returncode == 0
    builds = [line for line in machine.logged() if line.startswith("wheel ")]
    assert builds == ["wheel -DGGML_VULKAN=on -DGGML_RPC=ON"]
    installs = [line for line in machine.logged() if line.startswith("pipx ")]
    assert len(installs) == 2 and "0.3.36-vulkan-" in installs[1]
