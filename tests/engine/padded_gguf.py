"""Padded-vocabulary copies of real GGUFs, written at test time with the `gguf` package.

Same-family models often differ only by padding tokens at the end of the vocabulary (Qwen2.5-7B
has 152064 ids, Qwen2.5-0.5B 151936). A copy of a real model with rows appended to its token
embeddings (and output matrix, when untied) and entries appended to the tokenizer arrays is
such a pair; the merges are untouched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np

ROW_TENSORS = ("token_embd.weight", "output.weight")  # one row per token id
TOKEN_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores")
UNUSED = 5  # llama.cpp's token type for padding ids (what HF converters write)


def pad_vocabulary(src: Path, dst: Path, copies: Sequence[int | None]) -> Path:
    """Write `src` with one new token per entry of `copies`: the new id's embedding (and output
    row) is a copy of that existing id's row, or zeros for None (a padding row)."""
    reader = gguf.GGUFReader(src)
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(dst, arch)
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = field.contents()
        sub_type = field.types[1] if len(field.types) > 1 else None
        if name in TOKEN_ARRAYS:
            value = list(value) + [_padding_entry(name, n_vocab + i) for i in range(len(copies))]
        writer.add_key_value(name, value, field.types[0], sub_type=sub_type)
    for tensor in reader.tensors:
        data = np.array(tensor.data)
        if tensor.name in ROW_TENSORS:
            rows = [np.zeros_like(data[0]) if c is None else data[c] for c in copies]
            data = np.concatenate([data, np.stack(rows)])
        # quantized rows are raw bytes: the writer derives the shape from their byte shape
        writer.add_tensor(tensor.name, data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def _padding_entry(array: str, token_id: int) -> object:
    if array == "tokenizer.ggml.tokens":
        return f"<|pad_{token_id}|>"
    if array == "tokenizer.ggml.token_type":
        return UNUSED
    return 0.0
