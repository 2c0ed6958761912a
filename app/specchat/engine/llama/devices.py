"""What the llama.cpp build can offload to: its backend and devices with their free memory.

Devices come from ggml's backend registry (the same list llama.cpp offloads to), read through
ctypes from the ggml library that llama-cpp-python ships."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache

from specchat.errors import SpecchatError

# Caps the GPU memory that "auto" offload plans with (e.g. "1.5G", "300M", bytes): leaves room
# for other programs, and makes a small GPU of a large one (tests exercise the split with it).
BUDGET_ENV = "SPECCHAT_VRAM_BUDGET"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)

DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "accelerator"}


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    description: str
    kind: str  # "CPU", "GPU", "iGPU", "accelerator"
    free_bytes: int
    total_bytes: int

    @property
    def is_gpu(self) -> bool:
        return self.kind in ("GPU", "iGPU")


@lru_cache(maxsize=1)
def ggml_library() -> ctypes.CDLL | None:
    """The ggml library llama-cpp-python loaded, with the device calls typed (None if absent)."""
    try:
        from llama_cpp._ggml import libggml  # the library llama-cpp-python itself loaded
    except Exception:
        return None
    lib = libggml
    try:
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        for fn in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description):
            fn.restype = ctypes.c_char_p
            fn.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_type.restype = ctypes.c_int
        lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_memory.restype = None
        lib.ggml_backend_dev_memory.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_size_t),
        ]
    except AttributeError:
        return None
    return lib


def _init_llama() -> bool:
    """Initialise llama.cpp the engine's way (quiet log); False when it cannot be loaded."""
    try:
        from specchat.engine.llama.backend import init_backend
    except Exception:
        return False
    init_backend()
    return True


def devices() -> list[Device]:
    """All devices of the llama.cpp build (CPU included), with free/total memory now."""
    if not _init_llama() or (lib := ggml_library()) is None:
        return []
    found = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        found.append(
            Device(
                index=i,
                name=(lib.ggml_backend_dev_name(dev) or b"").decode(errors="replace"),
                description=(lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
                kind=DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev), "unknown"),
                free_bytes=free.value,
                total_bytes=total.value,
            )
        )
    return found


def gpus() -> list[Device]:
    return [d for d in devices() if d.is_gpu]


@lru_cache(maxsize=1)
def has_gpu() -> bool:
    """Whether the build sees a GPU (asked once: model info is built for every reply)."""
    return bool(gpus())


def supports_gpu_offload() -> bool:
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:
        return False


@lru_cache(maxsize=1)
def backend() -> str:
    """The build's accelerator backend: "CUDA", "Metal", "Vulkan"... or "CPU"."""
    for dev in gpus():
        name = dev.name.rstrip("0123456789")  # "CUDA0" -> "CUDA"
        return {"METAL": "Metal", "VULKAN": "Vulkan", "MTL": "Metal"}.get(name.upper(), name)
    return "CPU" if devices() or _init_llama() else "unavailable"


def vram_budget() -> int | None:
    """The cap SPECCHAT_VRAM_BUDGET puts on the memory "auto" plans with (None: no cap)."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return None
    match = _SIZE.match(text)
    if match is None:
        raise SpecchatError(
            f"{BUDGET_ENV}={text!r} is not a size: give bytes or a number with K, M, G or T "
            "(binary units), e.g. 1.5G"
        )
    number, unit = match.groups()
    return int(float(number) * 1024 ** "_KMGT".index(unit.upper() or "_"))


def free_vram(main_gpu: int = 0) -> int:
    """Free bytes on the GPU llama.cpp offloads to first, capped by SPECCHAT_VRAM_BUDGET (0 when
    there is no GPU)."""
    budget = vram_budget()  # a bad value is refused even on a machine without a GPU
    if not supports_gpu_offload():
        return 0
    found = gpus()
    if not found:
        return 0
    free = found[min(main_gpu, len(found) - 1)].free_bytes
    return free if budget is None else min(free, budget)


# ggml's backend libraries as llama-cpp-python ships them (libggml-vulkan.so...) -> shown name
_BACKEND_LIBS = {"cuda": "CUDA", "metal": "Metal", "vulkan": "Vulkan", "hip": "ROCm",
                 "sycl": "SYCL", "opencl": "OpenCL", "musa": "MUSA", "cann": "CANN"}


@lru_cache(maxsize=1)
def built_with() -> tuple[str, ...]:
    """The accelerator backends this build was compiled with, from the ggml libraries it ships:
    known even when the backend found no device and left ggml's registry (no Vulkan ICD...)."""
    try:
        import llama_cpp
    except Exception:
        return ()
    lib_dir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    try:
        names = os.listdir(lib_dir)
    except OSError:
        return ()
    found = {_BACKEND_LIBS[m.group(1)] for n in names
             if (m := re.match(r"(?:lib)?ggml-([a-z]+)\.(?:so|dylib|dll)", n))
             and m.group(1) in _BACKEND_LIBS}
    return tuple(sorted(found))


def no_gpu_reason() -> str:
    """Why this build offloads nothing (for a notice when GPU layers were asked for)."""
    compiled = built_with()
    if "Vulkan" in compiled:
        return ("this llama.cpp build has Vulkan but sees no Vulkan GPU (no driver or ICD found: "
                "check `vulkaninfo --summary`; a CPU-type device such as llvmpipe is used only "
                "when GGML_VK_VISIBLE_DEVICES names it)")
    if compiled:
        return f"this llama.cpp build has {', '.join(compiled)} but sees no GPU (check the driver)"
    return ("this llama.cpp build is CPU-only (rebuild it for your GPU: "
            "packaging/install.sh --backend cuda, metal or vulkan)")


def system_memory() -> tuple[int, int]:
    """(available, total) bytes of system RAM; (0, 0) when unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 0
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024, total
        except OSError:
            pass
    if sys.platform == "darwin" and not total:
        try:
            out = subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True)
            total = int(out.stdout.strip())
        except (OSError, ValueError):
            pass
    return total, total
