"""Hugging Face downloads against a local fake hub (HF_ENDPOINT on 127.0.0.1)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from specchat.config.schema import ModelConfig
from specchat.errors import DownloadError
from specchat.sources import is_downloaded, resolve_model, resolve_model_files

from .fake_hub import FakeHub
from .helpers import sha, tiny_gguf


def hf(file: str, repo: str = "org/tiny-GGUF", **kw: object) -> ModelConfig:
    return ModelConfig(repo=repo, file=file, **kw)


def test_download_into_hf_cache_then_reuse_without_network(
    hub: FakeHub,
    gguf_bytes: bytes,
    hub_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TQDM_POSITION", "-1")  # bars would show even off a terminal...
    model = hf("tiny-Q4_K_M.gguf", sha256=sha(gguf_bytes))
    assert not is_downloaded(model)
    path = resolve_model(model, progress=False)
    assert capsys.readouterr().err == ""  # ...but progress=False silences them
    assert path.read_bytes() == gguf_bytes
    assert path.is_relative_to(hub_env / "models--org--tiny-GGUF" / "snapshots")
    assert len(hub.gets("tiny-Q4_K_M.gguf")) == 1
    hub.stop()  # a cached file needs no network
    assert resolve_model(model, progress=False) == path
    assert is_downloaded(model)


def test_glob_fetches_every_part_of_a_split_gguf(
    hub: FakeHub,
    gguf_bytes: bytes,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TQDM_POSITION", "-1")  # show the bar although stderr is not a terminal
    files = resolve_model_files(hf("big-Q4_K_M-*.gguf", repo="org/split-GGUF"), progress=True)
    assert "big-Q4_K_M-00002-of-00002.gguf" in capsys.readouterr().err  # the progress bar
    assert [f.name for f in files] == [
        "big-Q4_K_M-00001-of-00002.gguf",
        "big-Q4_K_M-00002-of-00002.gguf",
    ]
    assert b"".join(f.read_bytes() for f in files) == gguf_bytes
    hub.stop()  # offline, the glob is matched against the cached snapshot
    again = resolve_model_files(hf("big-Q4_K_M-*.gguf", repo="org/split-GGUF"), offline=True)
    assert again == files
    # naming one part means the whole split file
    one = hf("big-Q4_K_M-00001-of-00002.gguf", repo="org/split-GGUF")
    assert resolve_model_files(one, offline=True) == files


def test_ambiguous_or_empty_glob_is_one_line_error(hub: FakeHub) -> None:
    with pytest.raises(DownloadError, match="matches 2 files"):
        resolve_model(hf("tiny-*.gguf"), progress=False)
    with pytest.raises(DownloadError, match="no file in org/tiny-GGUF matches"):
        resolve_model(hf("*IQ2*.gguf"), progress=False)


def test_interrupted_transfer_resumes_with_range(
    hub: FakeHub, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # huggingface_hub writes in 10 MiB chunks: a resumable cut must come after the first one
    big = tiny_gguf(tmp_path_factory.mktemp("big") / "big.gguf", n=12_000_000)
    hub.repos["org/big-GGUF"] = {"big.gguf": big}
    hub.cut_after = 11_000_000  # the server hangs up after 11 MB of the first GET
    path = resolve_model(hf("big.gguf", repo="org/big-GGUF", sha256=sha(big)), progress=False)
    assert path.read_bytes() == big
    ranges = [g.range for g in hub.gets("big.gguf")]
    assert ranges[0] is None and len(ranges) == 2
    offset = int(str(ranges[1]).removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= 11_000_000  # resumed where the kept bytes end, not from zero


def test_wrong_checksum_removes_the_download(hub: FakeHub, hub_env: Path) -> None:
    model = hf("tiny-Q4_K_M.gguf", sha256="0" * 64)
    with pytest.raises(DownloadError) as err:
        resolve_model(model, progress=False)
    assert "checksum mismatch for tiny-Q4_K_M.gguf" in err.value.message
    assert "\n" not in err.value.message
    assert not is_downloaded(model)
    assert not list(hub_env.rglob("blobs/*"))  # the corrupt blob is gone too


def test_offline_uses_cache_only_and_names_what_is_missing(
    hub: FakeHub, gguf_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        resolve_model(hf("tiny-Q4_K_M.gguf"), progress=False)
    msg = err.value.message
    assert "org/tiny-GGUF/tiny-Q4_K_M.gguf" in msg and "offline mode" in msg
    assert hub.requests == []  # offline means no request at all
    monkeypatch.delenv("HF_HUB_OFFLINE")
    path = resolve_model(hf("tiny-Q4_K_M.gguf"), progress=False)
    assert resolve_model(hf("tiny-Q4_K_M.gguf"), offline=True) == path


def test_connection_refused_is_one_line_download_error(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    for model in (hf("tiny-Q4_K_M.gguf"), hf("*.gguf")):
        with pytest.raises(DownloadError) as err:
            resolve_model(model, progress=False)
        assert err.value.message.startswith(f"cannot reach http://127.0.0.1:{port}")
        assert "\n" not in err.value.message


def test_missing_repo_and_file(hub: FakeHub) -> None:
    with pytest.raises(DownloadError, match="not found"):
        resolve_model(hf("nope.gguf"), progress=False)
    with pytest.raises(DownloadError, match="repository org/missing not found"):
        resolve_model(hf("x.gguf", repo="org/missing"), progress=False)


def test_local_path_source(tmp_path: Path, gguf_bytes: bytes, hub_env: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(gguf_bytes)
    assert resolve_model(ModelConfig(path=f, sha256=sha(gguf_bytes))) == f
    with pytest.raises(DownloadError, match="checksum mismatch"):
        resolve_model(ModelConfig(path=f, sha256="1" * 64))
    assert f.exists()  # a user's own file is never deleted
    with pytest.raises(DownloadError, match="model file not found"):
        resolve_model(ModelConfig(path=tmp_path / "none.gguf"))


def test_a_later_run_resumes_an_interrupted_download(
    hub: FakeHub, gguf_bytes: bytes, hub_env: Path
) -> None:
    from specchat.sources.hf import partial_path

    # what a run killed after 123,456 bytes leaves behind
    partial = partial_path("org/tiny-GGUF", sha(gguf_bytes))
    partial.parent.mkdir(parents=True)
    partial.write_bytes(gguf_bytes[:123_456])
    path = resolve_model(hf("tiny-Q4_K_M.gguf", sha256=sha(gguf_bytes)), progress=False)
    assert path.read_bytes() == gguf_bytes
    assert [g.range for g in hub.gets("tiny-Q4_K_M.gguf")] == ["bytes=123456-"]
    assert not partial.exists()


def test_naming_any_part_fetches_the_whole_split(hub: FakeHub, gguf_bytes: bytes) -> None:
    model = hf("big-Q4_K_M-00002-of-00002.gguf", repo="org/split-GGUF")
    files = resolve_model_files(model, progress=False)
    assert b"".join(f.read_bytes() for f in files) == gguf_bytes
    assert resolve_model(model, offline=True).name == "big-Q4_K_M-00001-of-00002.gguf"
