"""GGUF metadata through llama.cpp itself (a vocab-only load: no weights are read)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from specchat.engine.llama.model import LlamaModel


# llama.cpp's `general.file_type` values (enum llama_ftype)
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    name: str
    architecture: str
    quantization: str  # from general.file_type, e.g. "Q4_K_M"
    size_label: str  # general.size_label, e.g. "0.5B" ("" when absent)
    file_bytes: int  # all parts of a split GGUF together
    n_vocab: int
    n_ctx_train: int
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int

    def kv_bytes(self, n_ctx: int, bytes_per_value: int = 2) -> int:
        """KV cache size for n_ctx tokens (f16 keys and values)."""
        ctx = n_ctx if n_ctx > 0 else self.n_ctx_train
        return 2 * ctx * self.n_layers * self.n_head_kv * self.head_dim * bytes_per_value


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(str(value).split(",")[0].strip("[] ")) if value is not None else default
    except ValueError:
        return default


def gguf_info(model: LlamaModel, extra_files: tuple[Path, ...] = ()) -> GgufInfo:
    """Architecture, quantization, context length, layer and head counts of an opened model."""
    arch = model.architecture
    ftype = _int(model.meta("general.file_type"), -1)
    n_embd = _int(model.meta(f"{arch}.embedding_length"))
    n_head = _int(model.meta(f"{arch}.attention.head_count"), 1) or 1
    n_head_kv = _int(model.meta(f"{arch}.attention.head_count_kv"), n_head) or n_head
    head_dim = _int(model.meta(f"{arch}.attention.key_length")) or max(1, n_embd // n_head)
    path = model.path
    return GgufInfo(
        path=path,
        name=model.meta("general.name") or path.stem,
        architecture=arch,
        quantization=FILE_TYPES.get(ftype, f"type {ftype}" if ftype >= 0 else "unknown"),
        size_label=model.meta("general.size_label") or "",
        file_bytes=path.stat().st_size + sum(p.stat().st_size for p in extra_files),
        n_vocab=model.n_vocab,
        n_ctx_train=_int(model.meta(f"{arch}.context_length")),
        n_layers=_int(model.meta(f"{arch}.block_count")),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
    )


def open_vocab_only(path: Path) -> LlamaModel:
    """The model's vocabulary and metadata only (fast; ModelLoadError for a bad file)."""
    from specchat.engine.llama.model import LlamaModel
    from specchat.engine.types import ModelSettings

    return LlamaModel.open(ModelSettings(path=Path(path)), vocab_only=True)


def read_gguf_info(path: Path, extra_files: tuple[Path, ...] = ()) -> GgufInfo:
    model = open_vocab_only(path)
    try:
        return gguf_info(model, extra_files)
    finally:
        model.close()
