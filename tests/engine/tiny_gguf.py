"""Tiny llama-architecture GGUF models written at test time with the `gguf` package.

A few layers, a small SentencePiece-style vocabulary, F32 weights from a seed: real llama.cpp
execution in milliseconds, for the generation loop's mechanics."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

WORDS = ["the", "and", "sea", "cat", "is", "a", "of", "to", "in", "it", "you", "he", "we"]


def vocabulary(extra: list[str] | None = None) -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
    types = [2, 3, 3, 3, 3, 3]  # UNKNOWN, CONTROL...
    for i in range(256):
        tokens.append(f"<0x{i:02X}>")
        types.append(6)  # BYTE
    for c in [chr(c) for c in range(33, 127)]:
        tokens.append(c)
        types.append(1)
    for w in WORDS + (extra or []):
        tokens.append("▁" + w)
        types.append(1)
    tokens.append("▁")
    types.append(1)
    scores = [-(1000.0 - len(tok)) if t == 1 else 0.0 for tok, t in zip(tokens, types, strict=True)]
    return tokens, scores, types


def write_tiny_llama(
    path: Path,
    *,
    seed: int = 0,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_ff: int = 128,
    n_ctx: int = 512,
    extra_words: list[str] | None = None,
    perturb_from: int | None = None,
    perturb: float = 0.0,
) -> Path:
    """Write a tiny model. With perturb_from, start from that seed's weights and add noise of
    relative size `perturb` (a draft that agrees with the seed model most of the time)."""
    tokens, scores, types = vocabulary(extra_words)
    n_vocab = len(tokens)
    base = np.random.default_rng(seed if perturb_from is None else perturb_from)
    noise = np.random.default_rng(seed + 1000)

    def tensor(*shape: int, scale: float = 0.2) -> np.ndarray:
        w = base.standard_normal(shape).astype(np.float32) * scale
        if perturb:
            w += noise.standard_normal(shape).astype(np.float32) * scale * perturb
        return w

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(f"tiny-{seed}")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    w.add_tensor("token_embd.weight", tensor(n_vocab, n_embd, scale=1.0))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", tensor(n_vocab, n_embd, scale=0.5))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", tensor(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", tensor(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", tensor(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", tensor(n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
