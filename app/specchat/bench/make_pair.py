"""Calibrated target models for `specchat bench make-pair`.

A target is built from a small llama-family GGUF (the draft) by inserting extra full-size
transformer blocks, each a copy of an existing block placed right after it, whose residual outputs
(`attn_output`, `ffn_down`) are scaled by a small epsilon. Epsilon 0 leaves the residual stream
untouched, so the target's logits equal the draft's at several times its cost; a small epsilon
makes the target disagree with the draft a tunable fraction of the time. Such a pair measures the
speculative engine, not a model.

Copies of block i share a total scale `delta` (each copy gets delta / copies[i]), so to first order
the perturbation depends on delta alone, not on how many copies the cost asked for: delta is
calibrated on a cheap one-copy-per-block proxy (see calibrate.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specchat.errors import SpecchatError

SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3")  # residual added directly (no post-norm)
SCALED_PARTS = ("attn_output", "ffn_down")
_BLOCK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")

# Byte offsets of the float16 scale fields inside one quantized block. Every weight of the block is
# linear in these fields, so multiplying them by epsilon multiplies the block's values by epsilon
# (exactly for epsilon 0; up to float16 rounding of the scale otherwise).
_F16_SCALE_OFFSETS: dict[str, tuple[int, ...]] = {
    "Q4_0": (0,),
    "Q4_1": (0, 2),
    "Q5_0": (0,),
    "Q5_1": (0, 2),
    "Q8_0": (0,),
    "Q2_K": (80, 82),
    "Q3_K": (108,),
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
}


class MakePairError(SpecchatError):
    """The draft GGUF cannot be turned into a calibrated target."""


@dataclass(frozen=True)
class PairPlan:
    """How many copies follow each original block, and the cost this gives."""

    n_layers: int
    copies: tuple[int, ...]
    block_params: int  # matmul weights per block (one token costs ~ one multiply-add each)
    head_params: int  # the output projection's weights
    cost: float  # predicted target cost / draft cost

    @property
    def n_extra(self) -> int:
        return sum(self.copies)

    @property
    def block_count(self) -> int:
        return self.n_layers + self.n_extra


def plan_copies(n_layers: int, n_extra: int) -> tuple[int, ...]:
    """Spread n_extra copies evenly over n_layers blocks (differences of floor(i*n/L))."""
    if n_layers <= 0 or n_extra < 0:
        raise MakePairError(f"bad layer plan: {n_layers} layers, {n_extra} extra blocks")
    return tuple(
        ((i + 1) * n_extra) // n_layers - (i * n_extra) // n_layers for i in range(n_layers)
    )


def plan_for_cost(n_layers: int, block_params: int, head_params: int, cost: float) -> PairPlan:
    """Choose the number of extra blocks so target cost / draft cost is about `cost`.

    Cost model: one token costs one multiply-add per matmul weight (blocks and output head)."""
    if not cost >= 1.0:
        raise MakePairError(f"--cost must be at least 1 (got {cost})")
    draft = n_layers * block_params + head_params
    n_extra = round((cost - 1.0) * draft / block_params)
    copies = plan_copies(n_layers, n_extra)
    return PairPlan(n_layers, copies, block_params, head_params, predicted_cost(
        n_layers, n_extra, block_params, head_params))


def predicted_cost(n_layers: int, n_extra: int, block_params: int, head_params: int) -> float:
    draft = n_layers * block_params + head_params
    return (draft + n_extra * block_params) / draft


def epsilons(copies: Sequence[int], delta: float) -> list[float]:
    """Per-copy epsilon: the copies of one block share the total scale delta."""
    return [delta / n if n else 0.0 for n in copies]


def scale_tensor(data: np.ndarray, type_name: str, eps: float) -> tuple[np.ndarray, str]:
    """Return (new data, new type name) whose values are `eps` times those of `data`.

    Float tensors and quant types with float16 block scales are scaled in place of their scales
    (same type, same cost); other types are dequantized with gguf.quants and written as F32."""
    if type_name in ("F32", "F16"):
        return (data.astype(np.float32) * np.float32(eps)).astype(data.dtype), type_name
    if type_name in _F16_SCALE_OFFSETS:
        import gguf

        qtype = gguf.GGMLQuantizationType[type_name]
        _, type_size = gguf.GGML_QUANT_SIZES[qtype]
        blocks = np.array(data, dtype=np.uint8).reshape(-1, type_size)
        for off in _F16_SCALE_OFFSETS[type_name]:
            field = blocks[:, off : off + 2].copy().view(np.float16).astype(np.float32)
            blocks[:, off : off + 2] = (field * np.float32(eps)).astype(np.float16).view(np.uint8)
        return blocks.reshape(data.shape), type_name
    import gguf

    qtype = gguf.GGMLQuantizationType[type_name]
    try:
        values = gguf.quants.dequantize(np.asarray(data), qtype)
    except NotImplementedError as exc:
        raise MakePairError(f"cannot scale tensors of type {type_name}") from exc
    return (values.astype(np.float32) * np.float32(eps)), "F32"


@dataclass(frozen=True)
class DraftInfo:
    arch: str
    n_layers: int
    block_params: int
    head_params: int


def read_draft(path: Path) -> DraftInfo:
    """Read the draft's architecture and the weight counts that the cost model uses."""
    reader = _open_reader(path)
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise MakePairError(
            f"{path}: architecture {arch!r} is not supported (need one of "
            f"{', '.join(SUPPORTED_ARCHS)}: blocks that add their output straight to the residual)"
        )
    n_layers = int(_field(reader, f"{arch}.block_count"))
    per_block: dict[int, int] = {}
    head = 0
    embd = 0
    for t in reader.tensors:
        n = int(np.prod([int(x) for x in t.shape]))
        m = _BLOCK_RE.match(t.name)
        if m and len(t.shape) == 2 and int(t.shape[1]) > 1:
            per_block[int(m.group(1))] = per_block.get(int(m.group(1)), 0) + n
        elif t.name == "output.weight":
            head = n
        elif t.name == "token_embd.weight":
            embd = n
    if len(per_block) != n_layers:
        raise MakePairError(f"{path}: found weights for {len(per_block)} of {n_layers} blocks")
    block_params = round(sum(per_block.values()) / n_layers)
    return DraftInfo(arch, n_layers, block_params, head or embd)  # tied head = embedding


def write_target(draft: Path, out: Path, copies: Sequence[int], delta: float) -> None:
    """Write the target GGUF: each draft block i, followed by copies[i] scaled copies of it."""
    import gguf

    reader = _open_reader(draft)
    arch = _field(reader, "general.architecture")
    n_layers = int(_field(reader, f"{arch}.block_count"))
    if len(copies) != n_layers:
        raise MakePairError(f"plan has {len(copies)} entries for {n_layers} blocks")
    new_index: list[tuple[int, int]] = []  # (source block, copy number: 0 = the original)
    for i, n in enumerate(copies):
        new_index += [(i, c) for c in range(n + 1)]
    eps = epsilons(copies, delta)

    writer = gguf.GGUFWriter(str(out), arch=arch, endianess=reader.endianess)
    _copy_metadata(reader, writer, arch, n_layers, new_index, delta)

    by_block: dict[int, list[tuple[str, object]]] = {}
    plain: list[object] = []
    for t in reader.tensors:
        m = _BLOCK_RE.match(t.name)
        if m:
            by_block.setdefault(int(m.group(1)), []).append((m.group(2), t))
        else:
            plain.append(t)

    jobs: list[tuple[str, object, float | None]] = [(t.name, t, None) for t in plain]  # type: ignore[attr-defined]
    for new_i, (src, c) in enumerate(new_index):
        for part, t in by_block[src]:
            scaled = c > 0 and part.split(".")[0] in SCALED_PARTS
            jobs.append((f"blk.{new_i}.{part}", t, eps[src] if scaled else None))

    datas: list[np.ndarray] = []
    for name, t, e in jobs:
        data, type_name = _tensor_data(t, e)
        datas.append(data)
        qtype = gguf.GGMLQuantizationType[type_name]
        shape = data.shape if type_name in ("F32", "F16") else t.data.shape  # type: ignore[attr-defined]
        writer.add_tensor_info(name, shape, data.dtype, data.nbytes, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for data in datas:
        writer.write_tensor_data(data, tensor_endianess=reader.endianess)
    writer.close()


def _tensor_data(t: object, eps: float | None) -> tuple[np.ndarray, str]:
    data = t.data  # type: ignore[attr-defined]
    type_name = t.tensor_type.name  # type: ignore[attr-defined]
    if eps is None:
        return data, type_name
    if type_name == "F32" or type_name == "F16":
        return scale_tensor(np.asarray(data), type_name, eps)
    new, new_type = scale_tensor(np.asarray(data), type_name, eps)
    if new_type == "F32" and type_name != "F32":  # dequantized: gguf shape is reversed numpy shape
        shape = tuple(int(x) for x in reversed(t.shape))  # type: ignore[attr-defined]
        new = new.reshape(shape)
    return new, new_type


def _copy_metadata(reader, writer, arch: str, n_layers: int, new_index, delta: float) -> None:
    import gguf

    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == f"{arch}.block_count":
            value = len(new_index)
        elif field.name == "general.name":
            value = f"{value} (calibrated target: +{len(new_index) - n_layers} blocks)"
        elif sub is not None and sub != gguf.GGUFValueType.STRING and len(value) == n_layers:
            value = [value[src] for src, _ in new_index]  # per-layer arrays follow the blocks
        writer.add_key_value(field.name, value, vtype, sub_type=sub)
    writer.add_key_value("specchat.calibrated.delta", float(delta), gguf.GGUFValueType.FLOAT32)
    writer.add_key_value("specchat.calibrated.base_layers", n_layers, gguf.GGUFValueType.UINT32)


def _open_reader(path: Path):
    try:
        import gguf
    except ImportError as exc:
        raise MakePairError("make-pair needs the `gguf` package (pip install gguf)") from exc
    if not path.is_file():
        raise MakePairError(f"{path}: no such file")
    try:
        return gguf.GGUFReader(str(path))
    except Exception as exc:
        raise MakePairError(f"{path}: not a readable GGUF file ({exc})") from exc


def _field(reader, key: str) -> object:
    field = reader.fields.get(key)
    if field is None:
        raise MakePairError(f"GGUF metadata has no {key}")
    return field.contents()
