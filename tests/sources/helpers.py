"""Helpers for the source tests: a tiny real GGUF file and sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path


def tiny_gguf(path: Path, n: int = 300_000) -> bytes:
    """A small but real GGUF file (one KV, one tensor) written with the gguf package."""
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("fake")
    writer.add_tensor("blob", np.arange(n // 4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
