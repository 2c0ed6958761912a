"""Synthetic llama-architecture GGUF models: chosen width and depth, random weights.

Made for timing where no real model can travel (an offline GPU machine): a pass costs what the
shapes cost whatever the weights hold, so random weights are fine for timing. What they do not
give is meaningful text or an earned draft agreement; `specchat bench make-pair` dials the
agreement in on top of such a draft.

    python -m specchat.bench.synthetic OUT.gguf --width 2048 --depth 4 --vocab 32000

The tokenizer is a small SentencePiece-style ("llama") vocabulary: control tokens for a chat
template, the 256 byte tokens, printable ASCII, a few words, then filler words up to --vocab
(the vocabulary size sets the output head's cost, as in a real model)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specchat.errors import SpecchatError

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CONTROL = ("<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>")
WORDS = ("the", "and", "of", "to", "in", "is", "it", "you", "that", "for", "on", "with", "as",
         "a", "be", "this", "are", "or", "by", "sky", "blue", "robot", "paint", "sleep", "story")
TYPES = {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6


class SyntheticError(SpecchatError):
    """The synthetic model's shape is not one llama.cpp can run."""


@dataclass(frozen=True)
class Shape:
    width: int = 2048
    depth: int = 4
    heads: int = 16
    kv_heads: int = 4
    ff: int = 5632
    vocab: int = 32000
    n_ctx: int = 4096

    def check(self) -> None:
        if min(self.width, self.depth, self.heads, self.kv_heads, self.ff, self.n_ctx) < 1:
            raise SyntheticError("width, depth, heads, kv heads, ff and context must be >= 1")
        if self.width % self.heads:
            raise SyntheticError(f"width {self.width} is not a multiple of heads {self.heads}")
        if self.heads % self.kv_heads:
            raise SyntheticError(f"heads {self.heads} is not a multiple of kv heads "
                                 f"{self.kv_heads}")
        if (self.width // self.heads) % 2:
            raise SyntheticError(f"head size {self.width // self.heads} must be even (rope)")
        if self.vocab < min_vocab():
            raise SyntheticError(f"vocab must be at least {min_vocab()} (got {self.vocab})")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    def block_params(self) -> int:
        kv = self.kv_heads * self.head_dim
        return 2 * self.width * self.width + 2 * self.width * kv + 3 * self.width * self.ff

    def params(self) -> int:
        """All weights: blocks with their norms, the embedding, output norm and output head."""
        blocks = self.depth * (self.block_params() + 2 * self.width)
        return blocks + self.width + 2 * self.vocab * self.width


def _base_vocabulary() -> tuple[list[str], list[int]]:
    tokens = list(CONTROL)
    types = [TOKEN_UNKNOWN] + [TOKEN_CONTROL] * (len(CONTROL) - 1)
    tokens += [f"<0x{i:02X}>" for i in range(256)]
    types += [TOKEN_BYTE] * 256
    chars = [chr(c) for c in range(33, 127)]
    words = ["▁" + w for w in WORDS] + ["▁"]
    tokens += chars + words
    types += [TOKEN_NORMAL] * (len(chars) + len(words))
    return tokens, types


def min_vocab() -> int:
    return len(_base_vocabulary()[0])


def vocabulary(size: int) -> tuple[list[str], list[float], list[int]]:
    """`size` tokens: the base vocabulary, then filler words `▁w<n>`."""
    tokens, types = _base_vocabulary()
    tokens += [f"▁w{i}" for i in range(size - len(tokens))]
    types += [TOKEN_NORMAL] * (size - len(types))
    scores = [-float(len(t)) if kind == TOKEN_NORMAL else 0.0
              for t, kind in zip(tokens, types, strict=True)]
    return tokens, scores, types


def _add_metadata(writer, shape: Shape, name: str, file_type) -> None:
    tokens, scores, types = vocabulary(shape.vocab)
    writer.add_name(name)
    writer.add_context_length(shape.n_ctx)
    writer.add_embedding_length(shape.width)
    writer.add_block_count(shape.depth)
    writer.add_feed_forward_length(shape.ff)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(shape.vocab)
    writer.add_file_type(file_type)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def _tensors(shape: Shape) -> list[tuple[str, tuple[int, ...], float]]:
    """(name, numpy shape, standard deviation): 1/sqrt(fan-in) keeps activations in range; the
    output head is wider so that greedy choices are not near-ties (stable across batch sizes);
    a standard deviation of 0 means a norm weight (all ones)."""
    w, ff, kv = shape.width, shape.ff, shape.kv_heads * shape.head_dim
    out = [("token_embd.weight", (shape.vocab, w), 1.0),
           ("output_norm.weight", (w,), 0.0),
           ("output.weight", (shape.vocab, w), 4.0 / math.sqrt(w))]
    for i in range(shape.depth):
        out += [(f"blk.{i}.attn_norm.weight", (w,), 0.0),
                (f"blk.{i}.attn_q.weight", (w, w), 1.0 / math.sqrt(w)),
                (f"blk.{i}.attn_k.weight", (kv, w), 1.0 / math.sqrt(w)),
                (f"blk.{i}.attn_v.weight", (kv, w), 1.0 / math.sqrt(w)),
                (f"blk.{i}.attn_output.weight", (w, w), 1.0 / math.sqrt(w)),
                (f"blk.{i}.ffn_norm.weight", (w,), 0.0),
                (f"blk.{i}.ffn_gate.weight", (ff, w), 1.0 / math.sqrt(w)),
                (f"blk.{i}.ffn_up.weight", (ff, w), 1.0 / math.sqrt(w)),
                (f"blk.{i}.ffn_down.weight", (w, ff), 1.0 / math.sqrt(ff))]
    return out


def _values(rng: np.random.Generator, dims: tuple[int, ...], std: float, kind: str):
    import gguf

    if std == 0.0:
        return np.ones(dims, dtype=np.float32)  # norms stay F32, as converters write them
    values = rng.standard_normal(dims, dtype=np.float32)
    values *= np.float32(std)
    if kind == "F16":
        return values.astype(np.float16)
    if kind == "Q8_0":
        return gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
    return values


def write_synthetic(path: Path, shape: Shape, *, seed: int = 0, dtype: str = "f16",
                    name: str | None = None) -> Path:
    """Write a llama-architecture GGUF of this shape with random weights drawn from `seed`."""
    try:
        import gguf
    except ImportError as exc:
        raise SyntheticError("writing a GGUF needs the `gguf` package (pip install gguf)") from exc

    shape.check()
    kind = TYPES.get(dtype)
    if kind is None:
        raise SyntheticError(f"unknown type {dtype!r} (choose from {', '.join(TYPES)})")
    if kind == "Q8_0" and shape.width % 32:
        raise SyntheticError(f"q8_0 needs a width that is a multiple of 32 (got {shape.width})")
    file_type = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
                 "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[kind]
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    _add_metadata(writer, shape, name or f"synthetic-{shape.width}x{shape.depth}-s{seed}",
                  file_type)
    for tensor_name, dims, std in _tensors(shape):
        data = _values(rng, dims, std, kind)
        raw = None if data.dtype != np.uint8 else gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(tensor_name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _parser() -> argparse.ArgumentParser:
    d = Shape()
    p = argparse.ArgumentParser(
        prog="python -m specchat.bench.synthetic",
        description="Write a llama-architecture GGUF with random weights (fine for timing, "
                    "not for text).")
    p.add_argument("out", type=Path, metavar="OUT.gguf")
    p.add_argument("--width", type=int, default=d.width, help=f"embedding size ({d.width})")
    p.add_argument("--depth", type=int, default=d.depth, help=f"blocks ({d.depth})")
    p.add_argument("--heads", type=int, default=d.heads, help=f"attention heads ({d.heads})")
    p.add_argument("--kv-heads", type=int, default=d.kv_heads,
                   help=f"key/value heads ({d.kv_heads})")
    p.add_argument("--ff", type=int, default=d.ff, help=f"feed-forward size ({d.ff})")
    p.add_argument("--vocab", type=int, default=d.vocab, help=f"vocabulary size ({d.vocab})")
    p.add_argument("--n-ctx", type=int, default=d.n_ctx, help=f"trained context ({d.n_ctx})")
    p.add_argument("--type", default="f16", choices=sorted(TYPES), help="weight type (f16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--force", action="store_true", help="overwrite OUT.gguf")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    shape = Shape(args.width, args.depth, args.heads, args.kv_heads, args.ff, args.vocab,
                  args.n_ctx)
    try:
        if args.out.exists() and not args.force:
            raise SyntheticError(f"{args.out} exists (use --force to overwrite)")
        if not args.out.parent.is_dir():
            raise SyntheticError(f"folder does not exist: {args.out.parent}")
        shape.check()
        print(f"synthetic draft: llama, width {shape.width}, depth {shape.depth}, "
              f"{shape.params() / 1e6:.1f}M weights, {args.type}, vocab {shape.vocab} "
              "(random weights: fine for timing)", file=sys.stderr, flush=True)
        tmp = args.out.with_name(args.out.name + ".part")
        try:
            write_synthetic(tmp, shape, seed=args.seed, dtype=args.type)
            tmp.replace(args.out)
        finally:
            tmp.unlink(missing_ok=True)
    except SpecchatError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
