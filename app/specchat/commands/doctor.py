"""`specchat doctor`: the llama.cpp build (its backend, whether it sees a GPU, GPU offload),
devices, versions, config and paths."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata

from specchat import __version__
from specchat.config import paths
from specchat.config.registry import load_registry
from specchat.engine.llama import devices as gpu
from specchat.errors import SpecchatError

PACKAGES = ("llama-cpp-python", "huggingface-hub", "textual", "pydantic", "platformdirs", "numpy")
GB = 1e9


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="show the llama.cpp build, GPUs, versions, paths")
    parser.add_argument(
        "--rpc",
        metavar="HOST:PORT[,...]",
        help="list the devices of these llama.cpp RPC servers (default: those models.toml names)",
    )
    parser.set_defaults(handler=cmd_doctor)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


# ggml backend registry names of accelerators, as shown to the user
ACCELERATORS = {"CUDA": "CUDA", "MTL": "Metal", "METAL": "Metal", "VULKAN": "Vulkan",
                "ROCM": "ROCm", "HIP": "ROCm", "SYCL": "SYCL", "OPENCL": "OpenCL",
                "MUSA": "MUSA", "CANN": "CANN", "WEBGPU": "WebGPU"}


NO_GPU_HINTS = {
    "CUDA": "check the driver (nvidia-smi, CUDA_VISIBLE_DEVICES) or rebuild for the GPU this "
            "machine has",
    "Vulkan": "check the driver (vulkaninfo --summary, VK_ICD_FILENAMES); llama.cpp skips "
              "CPU-type Vulkan devices (Mesa's llvmpipe) unless GGML_VK_VISIBLE_DEVICES names "
              "them, e.g. GGML_VK_VISIBLE_DEVICES=0",
}


@dataclass(frozen=True)
class BuildInfo:
    """What the llama.cpp build was compiled with and what it sees now."""

    registries: tuple[tuple[str, int], ...]  # (ggml backend name, devices it found)
    gpus: tuple[str, ...]  # the GPU devices it sees (CUDA0, ...)
    offload: bool  # llama_supports_gpu_offload()
    # accelerator libraries the build ships: a backend that found no device at start-up (no
    # Vulkan driver) leaves ggml's registry, but the build still has it
    compiled: tuple[str, ...] = ()

    @property
    def accelerators(self) -> list[str]:
        found = [ACCELERATORS[n.upper()] for n, _ in self.registries if n.upper() in ACCELERATORS]
        return list(dict.fromkeys([*found, *self.compiled]))

    @property
    def built_with(self) -> list[str]:
        names = [n for n, _ in self.registries]
        shown = {ACCELERATORS.get(n.upper(), n) for n in names}
        return [*names, *(c for c in self.compiled if c not in shown)]

    @property
    def backend(self) -> str:
        return self.accelerators[0] if self.accelerators else "CPU"


def _registries() -> tuple[tuple[str, int], ...]:
    """The ggml backends compiled into (or loaded by) the build, with their device counts."""
    import ctypes

    from llama_cpp._ggml import libggml as lib

    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_dev_count.argtypes = [ctypes.c_void_p]
    found = []
    for i in range(lib.ggml_backend_reg_count()):
        reg = lib.ggml_backend_reg_get(i)
        name = (lib.ggml_backend_reg_name(reg) or b"?").decode(errors="replace")
        found.append((name, int(lib.ggml_backend_reg_dev_count(reg))))
    return tuple(found)


def _registries_from_system_info(info: str) -> tuple[tuple[str, int], ...]:
    """Fallback when the registry cannot be read: backend names from llama_print_system_info
    ("CUDA : ARCHS = 900 | ... | CPU : SSE3 = 1 | ..."); device counts unknown (-1)."""
    names = []
    for part in info.split("|"):
        name = part.split(":")[0].strip()
        if ":" in part and name and (name.upper() in ACCELERATORS or name == "CPU"):
            names.append(name)
    return tuple((n, -1) for n in dict.fromkeys(names))


def _offload_word(build: BuildInfo) -> str:
    """llama.cpp's "supports GPU offload" is also true for an RPC-only build: say which."""
    if not build.offload:
        return "no"
    if build.gpus:
        return "yes"
    return "to RPC servers only" if any(n.upper() == "RPC" for n, _ in build.registries) else "no"


def build_lines(build: BuildInfo, nvidia_gpu: bool, apple_silicon: bool) -> list[str]:
    """The doctor's summary of the build: backend, what it was built with, GPU seen, offload."""
    seen = f"yes ({', '.join(build.gpus)})" if build.gpus else "no"
    built = ", ".join(build.built_with) or "unknown"
    lines = [f"llama.cpp     backend {build.backend} (built with {built}), GPU seen {seen}, "
             f"GPU offload {_offload_word(build)}"]
    if build.accelerators and not build.gpus:
        lines.append(f"  hint: this build has {build.backend} but sees no GPU: "
                     f"{NO_GPU_HINTS.get(build.backend, NO_GPU_HINTS['CUDA'])}")
    elif not build.accelerators and nvidia_gpu:
        lines.append("  hint: an NVIDIA GPU is present but this llama-cpp-python build is "
                     "CPU-only; rebuild it with packaging/install.sh --backend cuda")
    elif not build.accelerators and apple_silicon:
        lines.append("  hint: rebuild llama-cpp-python with Metal: "
                     "packaging/install.sh --backend metal")
    return lines


def _build_lines() -> list[str]:
    try:
        import llama_cpp
    except Exception as exc:  # a broken native build must still be reported, not crash
        return [f"llama.cpp     cannot load llama_cpp: {type(exc).__name__}: {exc}"]
    devices = gpu.devices()  # initialises llama.cpp (quiet log) before the registry is read
    info = (llama_cpp.llama_print_system_info() or b"").decode(errors="replace").strip(" |")
    try:
        registries = _registries()
    except (AttributeError, OSError, ImportError):  # an older ggml without the registry API
        registries = _registries_from_system_info(info)
    gpus = tuple(d.name for d in devices if d.is_gpu)
    build = BuildInfo(registries, gpus, gpu.supports_gpu_offload(), gpu.built_with())
    nvidia = shutil.which("nvidia-smi") is not None
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    lines = build_lines(build, nvidia, apple)
    for dev in devices:
        mem = f", {dev.free_bytes / GB:.1f} of {dev.total_bytes / GB:.1f} GB free"
        lines.append(f"  device {dev.index}  {dev.kind}: {dev.name} ({dev.description}){mem}")
    lines.extend(_budget_lines())
    lines.append(f"  system info {info}")
    return lines


def _budget_lines() -> list[str]:
    try:
        budget = gpu.vram_budget()
    except SpecchatError as exc:
        return [f"  ERROR       {exc.message}"]
    if budget is None:
        return []
    return [f"  budget      \"auto\" offload plans with at most {budget / GB:.2f} GB of GPU memory "
            f"({gpu.BUDGET_ENV})"]


def _config_lines(config: str | None) -> tuple[list[str], bool]:
    user = paths.user_models_toml()
    lines = [
        f"  packaged    {paths.packaged_models_toml()}",
        f"  user        {user} ({'present' if user.is_file() else 'absent'})",
    ]
    if config:
        lines.append(f"  --config    {config} (used instead of the user file)")
    try:
        registry = load_registry(config)
    except SpecchatError as exc:
        return [*lines, f"  ERROR       {exc.message}"], False
    lines.append(f"  pairs       {len(registry.pairs)}, default {registry.default_pair!r}")
    return lines, True


def _configured_rpc(config: str | None) -> tuple[str, ...]:
    """Every RPC server a pair of models.toml names, in order."""
    try:
        registry = load_registry(config)
    except SpecchatError:  # reported in the config section
        return ()
    found = [ep for pair in registry.pairs.values() for ep in pair.rpc]
    return tuple(dict.fromkeys(found))


def rpc_lines(servers: tuple[str, ...], source: str) -> tuple[list[str], bool]:
    """Whether the build has RPC, then each server's devices with their memory (or why not)."""
    from specchat.engine.llama import rpc

    has_rpc = rpc.rpc_available()
    lines = [f"rpc           built with RPC: {'yes' if has_rpc else 'no'}"]
    if not servers:
        return lines, True
    if not has_rpc:
        missing = f"{source} names RPC servers, but this build has no RPC backend"
        return [*lines, f"  ERROR       {missing}; {rpc.REBUILD_HINT}"], False
    ok = True
    for endpoint in servers:
        runner = rpc.RpcRunner((endpoint,))
        try:
            found = rpc.register_servers((endpoint,), runner)
        except SpecchatError as exc:
            lines.append(f"  ERROR       {exc.message}")
            ok = False
            continue
        finally:
            runner.stop()
        for dev in found.devices:
            lines.append(
                f"  server {endpoint}  {dev.name}: {dev.free_bytes / GB:.1f} of "
                f"{dev.total_bytes / GB:.1f} GB free ({source})"
            )
        if found.warning:
            lines.append(f"  warning     {found.warning}")
    return lines, ok


def _rpc_section(args: argparse.Namespace, given: tuple[str, ...] | None) -> bool:
    servers = given if given is not None else _configured_rpc(args.config)
    lines, ok = rpc_lines(servers, "--rpc" if given is not None else "models.toml")
    for line in lines:
        print(line)
    return ok


def cmd_doctor(args: argparse.Namespace) -> int:
    from specchat.engine.llama.rpc import parse_endpoints

    rpc_given = parse_endpoints(args.rpc) if getattr(args, "rpc", None) is not None else None
    print(
        f"specchat      {__version__} (Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()})"
    )
    print("packages      " + ", ".join(f"{p} {_version(p)}" for p in PACKAGES))
    for line in _build_lines():
        print(line)
    available, total = gpu.system_memory()
    if total:
        print(f"memory        {available / GB:.1f} of {total / GB:.1f} GB RAM available")
    rpc_ok = _rpc_section(args, rpc_given)
    print("config")
    config_lines, ok = _config_lines(args.config)
    for line in config_lines:
        print(line)
    offline = "on" if paths.hf_offline() else "off"
    env_cache = " (SPECCHAT_CACHE_DIR)" if os.environ.get("SPECCHAT_CACHE_DIR") else ""
    print("paths")
    print(f"  cache       {paths.cache_dir()}{env_cache}")
    print(
        f"  hf cache    {paths.hf_cache_dir()} (endpoint {paths.hf_endpoint()}, offline {offline})"
    )
    print(f"  data        {paths.data_dir()}")
    if not ok:
        raise SpecchatError("models.toml is invalid (see the ERROR line above)")
    if not rpc_ok:
        raise SpecchatError("an RPC server cannot be used (see the ERROR line above)")
    gpu.vram_budget()  # a bad SPECCHAT_VRAM_BUDGET: exit 2 with its message
    return 0
