"""A fake machine for packaging/install.sh: a PATH of chosen tools (fakes and the real basics),
a Vulkan SDK or CUDA toolkit of a chosen header version, and a fake Python whose `pip wheel`
"builds" llama-cpp-python (or fails like a real compiler does) and a fake pipx that records how it
was asked to install. Nothing is compiled or installed."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "install.sh"
# what install.sh and its library run besides the tools a test chooses
BASICS = ("uname", "sed", "dirname", "grep", "sort", "head", "tail", "cut", "cksum", "paste",
          "mkdir", "rm", "mv", "cat", "tr", "mktemp", "ls", "id", "cp", "touch", "basename")
VULKAN_CORE = """#define VK_HEADER_VERSION {patch}
#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, 1, {minor}, VK_HEADER_VERSION)
"""
DISCRETE_GPU = "echo 'deviceType         = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU'"
LLVMPIPE = "echo 'deviceType         = PHYSICAL_DEVICE_TYPE_CPU'"
COMPILER_ERROR = "ggml-vulkan.cpp:5214:17: error: 'LayerSettingEXT' is not a member of 'vk'"

# python3 -m venv DIR | -m pip download ... -d DIR | -m pip wheel ... -w DIR
FAKE_PYTHON = f"""#!/bin/bash
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
out=""; prev=""
for a in "$@"; do case "$prev" in -d|-w) out="$a" ;; esac; prev="$a"; done
if [ "$1 $2 $3" = "-m pip download" ]; then touch "$out/llama_cpp_python-0.3.36.tar.gz"; exit 0; fi
if [ "$1 $2 $3" = "-m pip wheel" ]; then
  echo "wheel $CMAKE_ARGS" >> "$FAKE_LOG"
  case " $CMAKE_ARGS " in *" $FAKE_FAIL_ON "*) echo "  {COMPILER_ERROR}"; exit 1 ;; esac
  touch "$out/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"; exit 0
fi
exit 3
"""
FAKE_PIPX = """#!/bin/bash
echo "pipx $* find-links=$PIP_FIND_LINKS constraint=$(cat "$PIP_CONSTRAINT")" >> "$FAKE_LOG"
"""


@dataclass
class Machine:
    root: Path
    tools: dict[str, str] = field(default_factory=dict)  # name -> shell body
    env: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.root / "fake.log"

    def tool(self, name: str, body: str = "exit 0") -> Machine:
        self.tools[name] = body
        return self

    def vulkan_sdk(self, version: str = "1.4.309", glslc: bool = True) -> Machine:
        """A Vulkan SDK folder (VULKAN_SDK) with headers of `version`."""
        _, minor, patch = version.split(".")
        sdk = self.root / "vulkan-sdk"
        (sdk / "include" / "vulkan").mkdir(parents=True, exist_ok=True)
        (sdk / "include" / "vulkan" / "vulkan_core.h").write_text(
            VULKAN_CORE.format(minor=minor, patch=patch))
        (sdk / "share" / "cmake" / "SPIRV-Headers").mkdir(parents=True, exist_ok=True)
        (sdk / "share" / "cmake" / "SPIRV-Headers" / "SPIRV-HeadersConfig.cmake").write_text("")
        (sdk / "lib").mkdir(exist_ok=True)
        (sdk / "lib" / "libvulkan.so").write_text("")
        if glslc:
            (sdk / "bin").mkdir(exist_ok=True)
            _write_exe(sdk / "bin" / "glslc", "exit 0")
        self.env["VULKAN_SDK"] = str(sdk)
        return self

    def cuda_toolkit(self, cublas: bool = True) -> Machine:
        cuda = self.root / "cuda"
        (cuda / "bin").mkdir(parents=True, exist_ok=True)
        _write_exe(cuda / "bin" / "nvcc", "exit 0")
        if cublas:
            (cuda / "include").mkdir(exist_ok=True)
            (cuda / "include" / "cublas_v2.h").write_text("")
        self.env["CUDA_HOME"] = str(cuda)
        return self

    def builds(self, fail_on: str = "never") -> Machine:
        """A Python that builds wheels (failing when CMAKE_ARGS holds `fail_on`) and pipx."""
        self.tool("python3", FAKE_PYTHON.split("\n", 1)[1])
        self.tool("pipx", FAKE_PIPX.split("\n", 1)[1])
        self.tool("c++")
        self.env["FAKE_FAIL_ON"] = fail_on
        return self

    def run(self, *args: str, cmake: str = "") -> subprocess.CompletedProcess[str]:
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        for name, body in self.tools.items():
            _write_exe(bin_dir / name, body)
        for basic in BASICS:
            link = bin_dir / basic
            if not link.exists():
                link.symlink_to(next(Path(d) / basic for d in ("/usr/bin", "/bin")
                                     if (Path(d) / basic).exists()))
        env = {
            "PATH": str(bin_dir),
            "HOME": str(self.root),
            "SPECCHAT_CACHE_DIR": str(self.root / "cache"),
            "CMAKE_ARGS": cmake,
            "CUDA_HOME": str(self.root / "no-cuda"),
            "FAKE_LOG": str(self.log),
            **self.env,
        }
        return subprocess.run(["/bin/bash", str(SCRIPT), *args], env=env, capture_output=True,
                              text=True, timeout=60, check=False)

    def logged(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def _write_exe(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    os.chmod(path, 0o755)
