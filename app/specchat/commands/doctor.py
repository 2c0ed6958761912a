"""`specchat doctor`: the llama.cpp build, GPU offload, devices, versions, config and paths."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from importlib import metadata

from specchat import __version__
from specchat.config import paths
from specchat.config.registry import load_registry
from specchat.engine import devices as gpu
from specchat.errors import SpecchatError

PACKAGES = ("llama-cpp-python", "huggingface-hub", "textual", "pydantic", "platformdirs", "numpy")
GB = 1e9


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="show the llama.cpp build, GPUs, versions, paths")
    parser.set_defaults(handler=cmd_doctor)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _build_lines() -> list[str]:
    try:
        import llama_cpp
    except Exception as exc:  # a broken native build must still be reported, not crash
        return [f"llama.cpp     cannot load llama_cpp: {type(exc).__name__}: {exc}"]
    offload = gpu.supports_gpu_offload()
    lines = [f"llama.cpp     backend {gpu.backend()}, GPU offload {'yes' if offload else 'no'}"]
    for dev in gpu.devices():
        mem = f", {dev.free_bytes / GB:.1f} of {dev.total_bytes / GB:.1f} GB free"
        lines.append(f"  device {dev.index}  {dev.kind}: {dev.name} ({dev.description}){mem}")
    info = (llama_cpp.llama_print_system_info() or b"").decode(errors="replace").strip(" |")
    lines.append(f"  system info {info}")
    if not offload and shutil.which("nvidia-smi"):
        lines.append(
            "  hint: an NVIDIA GPU is present but this llama-cpp-python build is CPU-only; "
            "rebuild it with packaging/install.sh --backend cuda"
        )
    elif not offload and sys.platform == "darwin" and platform.machine() == "arm64":
        lines.append(
            "  hint: rebuild llama-cpp-python with Metal: packaging/install.sh --backend metal"
        )
    return lines


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


def cmd_doctor(args: argparse.Namespace) -> int:
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
    return 0
