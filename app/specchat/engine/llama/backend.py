"""llama.cpp itself, once per process: initialisation with a quiet log, and questions about
what this build of the library offers (functions bound by llama-cpp-python or only exported).

llama.py (models) and devices.py (what the build can offload to) both start from here, so
neither imports the other."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import llama_cpp as lc

_lock = threading.Lock()
_ready = False
_captured: list[str] | None = None  # llama.cpp's log lines while captured_log() runs


@lc.llama_log_callback
def _quiet_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    captured = _captured
    if captured is not None:
        captured.append(text.decode(errors="replace").strip())
    if os.environ.get("SPECCHAT_LLAMA_LOG"):
        os.write(2, text)


@contextlib.contextmanager
def captured_log() -> Iterator[list[str]]:
    """llama.cpp's log lines written meanwhile (to say why a call failed); one at a time."""
    global _captured
    lines: list[str] = []
    with _lock:
        _captured = lines
        try:
            yield lines
        finally:
            _captured = None


def init_backend() -> None:
    """Initialise llama.cpp once, with its log routed through our quiet logger."""
    global _ready
    with _lock:
        if not _ready:
            lc.llama_log_set(_quiet_log, ctypes.c_void_p())
            lc.llama_backend_init()
            _ready = True


def optional_function(name: str, restype: Any, argtypes: list[Any]) -> Callable[..., Any] | None:
    """A llama.cpp function by name: llama-cpp-python's binding when it has one, else the
    symbol exported by the library it loaded; None when this build has neither."""
    bound = getattr(lc, name, None)
    if bound is not None:
        return bound
    lib = getattr(lc.llama_cpp, "_lib", None)
    fn = getattr(lib, name, None) if lib is not None else None
    if fn is None:
        return None
    fn.restype, fn.argtypes = restype, argtypes
    return fn


def model_keeps_state(model: ctypes.c_void_p) -> bool:
    """True for recurrent (Mamba, RWKV) and hybrid (Jamba, LFM2, Qwen3-Next...) models: their
    state cannot be rolled back a few tokens, only cleared."""
    for name in ("llama_model_is_recurrent", "llama_model_is_hybrid"):
        fn = optional_function(name, ctypes.c_bool, [ctypes.c_void_p])
        if fn is not None and fn(model):
            return True
    return False
