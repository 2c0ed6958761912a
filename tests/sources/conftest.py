from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fake_hub import FakeHub
from .helpers import tiny_gguf


@pytest.fixture(scope="session")
def gguf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fresh HF and specchat caches; no offline flag; returns the HF cache folder."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("SPECCHAT_CACHE_DIR", str(tmp_path / "specchat"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    return tmp_path / "hf"


@pytest.fixture
def hub(hub_env: Path, gguf_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    half = len(gguf_bytes) // 2
    fake = FakeHub(
        repos={
            "org/tiny-GGUF": {"tiny-Q4_K_M.gguf": gguf_bytes, "tiny-Q8_0.gguf": gguf_bytes[::-1]},
            "org/split-GGUF": {
                "big-Q4_K_M-00001-of-00002.gguf": gguf_bytes[:half],
                "big-Q4_K_M-00002-of-00002.gguf": gguf_bytes[half:],
                "README.md": b"hi",
            },
        }
    ).start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    yield fake
    fake.stop()
