"""One CPU threadpool shared by the target and the draft.

Each llama.cpp context otherwise gets its own pool whose idle threads spin-wait: with two models
on a few cores the draft's spinning threads steal the cores the target needs (measured here on
2 cores: 2-3x slower per token). llama-cpp-python does not bind the threadpool calls, so we bind
the three we need from the libraries it ships. Without them we fall back to per-context pools."""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import llama_cpp as lc

log = logging.getLogger(__name__)
GGML_MAX_N_THREADS = 512


class ThreadpoolParams(ctypes.Structure):
    _fields_ = [
        ("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS),
        ("n_threads", ctypes.c_int),
        ("prio", ctypes.c_int),
        ("poll", ctypes.c_uint32),
        ("strict_cpu", ctypes.c_bool),
        ("paused", ctypes.c_bool),
    ]


def load_ggml_part(name: str) -> ctypes.CDLL | None:
    """One of the ggml libraries shipped with llama-cpp-python (ggml-base, ggml-cpu...)."""
    lib_dir = Path(lc.__file__).parent / "lib"
    for candidate in sorted(lib_dir.glob(f"lib{name}.*")) + sorted(lib_dir.glob(f"{name}.*")):
        try:
            return ctypes.CDLL(str(candidate))
        except OSError:
            continue
    return None


class SharedThreadpool:
    def __init__(self, n_threads: int) -> None:
        self.n_threads = n_threads
        self._pool: ctypes.c_void_p | None = None
        base, cpu = load_ggml_part("ggml-base"), load_ggml_part("ggml-cpu")
        if base is None or cpu is None or not hasattr(cpu, "ggml_threadpool_new"):
            return
        base.ggml_threadpool_params_default.argtypes = [ctypes.c_int]
        base.ggml_threadpool_params_default.restype = ThreadpoolParams
        cpu.ggml_threadpool_new.argtypes = [ctypes.POINTER(ThreadpoolParams)]
        cpu.ggml_threadpool_new.restype = ctypes.c_void_p
        cpu.ggml_threadpool_free.argtypes = [ctypes.c_void_p]
        cpu.ggml_threadpool_free.restype = None
        self._params = base.ggml_threadpool_params_default(n_threads)
        self._cpu = cpu
        self._pool = cpu.ggml_threadpool_new(ctypes.byref(self._params))
        llama = lc.llama_cpp._lib
        llama.llama_attach_threadpool.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        llama.llama_attach_threadpool.restype = None
        self._attach = llama.llama_attach_threadpool

    @property
    def available(self) -> bool:
        return bool(self._pool)

    def attach(self, ctx: ctypes.c_void_p) -> bool:
        if not self._pool:
            return False
        self._attach(ctx, self._pool, self._pool)
        return True

    def free(self) -> None:
        if self._pool:
            self._cpu.ggml_threadpool_free(self._pool)
            self._pool = None
