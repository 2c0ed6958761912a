"""llama.cpp's server's vocabulary and properties endpoints: /tokenize, /detokenize, /props.

They read the target's vocabulary, which never changes once loaded, so they run beside a
generation instead of waiting for their turn."""

from __future__ import annotations

from typing import Any

from specchat.engine.types import GenerationSettings
from specchat.server.errors import bad_request
from specchat.server.served import ServedEngine

MAX_DETOKENIZE = 1 << 20


def tokenize(engine: ServedEngine, data: dict[str, Any]) -> dict[str, object]:
    """{"content": str, "add_special": bool, "parse_special": bool, "with_pieces": bool}."""
    content = data.get("content")
    if not isinstance(content, str):
        raise bad_request("content must be a string", param="content")
    flags = {name: data.get(name, default) for name, default in _TOKENIZE_FLAGS.items()}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise bad_request(f"{name} must be true or false", param=name)
    target = engine.target
    tokens = target.tokenize(
        content, add_special=flags["add_special"], parse_special=flags["parse_special"]
    )
    if not flags["with_pieces"]:
        return {"tokens": tokens}
    pieces = [_piece(target.piece(t)) for t in tokens]
    return {"tokens": [{"id": t, "piece": p} for t, p in zip(tokens, pieces, strict=True)]}


_TOKENIZE_FLAGS = {"add_special": False, "parse_special": True, "with_pieces": False}


def _piece(data: bytes) -> str | list[int]:
    """As llama.cpp: the text, or the bytes when they are not whole UTF-8 on their own."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return list(data)


def detokenize(engine: ServedEngine, data: dict[str, Any]) -> dict[str, object]:
    """{"tokens": [int, ...]} -> {"content": str}."""
    tokens = data.get("tokens")
    target = engine.target
    if not isinstance(tokens, list) or len(tokens) > MAX_DETOKENIZE:
        raise bad_request("tokens must be a list of token ids", param="tokens")
    for i, token in enumerate(tokens):
        if type(token) is not int or not 0 <= token < target.n_vocab:
            raise bad_request(
                f"tokens[{i}] is not a token id of this model (0..{target.n_vocab - 1})",
                param="tokens",
            )
    return {"content": target.detokenize(tokens)}


def props(engine: ServedEngine, model: str, defaults: GenerationSettings) -> dict[str, object]:
    """The subset of llama.cpp's /props that describes this server (one slot, text only)."""
    info = engine.info
    return {
        "default_generation_settings": {
            "n_ctx": info.target.n_ctx,
            "params": {
                "temperature": defaults.temperature,
                "top_k": defaults.top_k,
                "top_p": defaults.top_p,
                "min_p": defaults.min_p,
                "seed": -1 if defaults.seed is None else defaults.seed,
                "n_predict": defaults.max_tokens,
                "stop": list(defaults.stop),
            },
        },
        "total_slots": 1,
        "model_alias": model,
        "model_path": str(info.target.path),
        "chat_template": engine.template.source,
        "modalities": {"vision": False, "audio": False},
        "build_info": "specchat",
        "speculative": {
            "mode": info.mode.value,
            "draft": str(info.draft.path) if info.draft else None,
            "cross_vocab": info.cross_vocab,
        },
    }
