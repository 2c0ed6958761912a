"""Derived GGUFs made with llama.cpp's own quantizer (the tests' same-vocabulary pairs: a
requantized copy of a model is a real draft that shares its vocabulary)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import llama_cpp as lc

from specchat.engine.llama.model import init_backend
from specchat.errors import ModelLoadError


def requantize(src: Path, ftype: str, out: Path, n_threads: int | None = None) -> Path:
    """Write `src` requantized to `ftype` (e.g. "Q4_0", "Q2_K", "Q8_0") at `out`, once."""
    if out.is_file() and out.stat().st_size > 0:
        return out
    code = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{ftype.upper()}", None)
    if code is None:
        raise ModelLoadError(f"unknown quantization type {ftype!r}")
    init_backend()  # routes llama.cpp's log lines through our quiet logger
    params = lc.llama_model_quantize_default_params()
    params.ftype = code
    params.allow_requantize = True
    params.nthread = n_threads or os.cpu_count() or 1
    tmp = out.with_name(out.name + ".part")
    rc = lc.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise ModelLoadError(f"quantizing {src.name} to {ftype} failed (code {rc})")
    tmp.replace(out)
    return out
