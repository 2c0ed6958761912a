"""Hugging Face downloads through huggingface_hub's standard cache.

A file already in the cache is used without touching the network. Otherwise one metadata request
(no retries: a dead network fails at once, in one line) gives the file's ETag and location; the
bytes go to a partial file next to the cache's blob with huggingface_hub's own `http_get`
(progress bar, Range retries within a run), so a run that is interrupted (Ctrl-C, network loss)
resumes where it stopped next time. The finished blob is moved into the cache and
`hf_hub_download` links it into the snapshot, exactly as if it had downloaded it itself.
Globs are matched against the repo listing (online) or the cached snapshot (offline); split
GGUFs (`-00001-of-00003.gguf`) are fetched whole."""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from specchat.config.paths import hf_cache_dir, hf_endpoint
from specchat.config.schema import ModelConfig
from specchat.errors import DownloadError
from specchat.sources.cancel import CANCEL_CHUNK, CancellableWriter, check

SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
GLOB_CHARS = set("*?[")


@contextmanager
def _small_chunks() -> Iterator[None]:
    """huggingface_hub reads 10 MiB per chunk; a cancel is seen between chunks, so read less."""
    from huggingface_hub import constants

    size = constants.DOWNLOAD_CHUNK_SIZE
    constants.DOWNLOAD_CHUNK_SIZE = min(size, CANCEL_CHUNK)
    try:
        yield
    finally:
        constants.DOWNLOAD_CHUNK_SIZE = size


@contextmanager
def _progress_bars(show: bool) -> Iterator[None]:
    """huggingface_hub's progress bars on or off for one download (its global switch)."""
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if not show and not was_disabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not show and not was_disabled:
            enable_progress_bars()


def split_parts(name: str) -> list[str]:
    """Every part of a split GGUF named by any one part (the name itself otherwise)."""
    m = SPLIT.search(name)
    if not m:
        return [name]
    stem, n = name[: m.start()], int(m.group(2))
    return [f"{stem}-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)]


def _pick(repo: str, pattern: str, names: list[str]) -> list[str]:
    matches = sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))
    if not matches:
        raise DownloadError(f"no file in {repo} matches {pattern!r}")
    if len(matches) > 1:
        splits = [SPLIT.search(m) for m in matches]
        stems = {m[: s.start()] if s else m for m, s in zip(matches, splits, strict=False)}
        if not all(splits) or len(stems) > 1:
            raise DownloadError(
                f"{pattern!r} matches {len(matches)} files in {repo} ({', '.join(matches[:3])}…); "
                "make 'file' more specific"
            )
    return matches


def cached_snapshot(model: ModelConfig) -> Path | None:
    """The cached snapshot folder for the model's revision, or None."""
    folder = hf_cache_dir() / ("models--" + str(model.repo).replace("/", "--"))
    revision = model.revision or "main"
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snap = folder / "snapshots" / commit
    return snap if snap.is_dir() else None


def _cached_files(model: ModelConfig) -> list[Path] | None:
    snap = cached_snapshot(model)
    if snap is None:
        return None
    pattern = str(model.file)
    if not GLOB_CHARS & set(pattern):
        paths = [snap / name for name in split_parts(pattern)]
        return paths if all(p.is_file() for p in paths) else None
    names = [str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()]
    try:
        picked = _pick(str(model.repo), pattern, names)
    except DownloadError:
        return None
    paths = [snap / n for n in picked]
    split = SPLIT.search(picked[0])
    if split and len(picked) != int(split.group(2)):
        return None  # some parts missing
    return paths


def _network_error(model: ModelConfig, exc: BaseException) -> DownloadError:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    label = f"{model.repo}/{model.file}"
    if isinstance(exc, GatedRepoError):
        return DownloadError(
            f"{model.repo} is gated: accept its license on the Hub and log in (hf auth login)"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return DownloadError(f"repository {model.repo} not found on {hf_endpoint()} (or private)")
    if isinstance(exc, RevisionNotFoundError):
        return DownloadError(f"revision {model.revision!r} not found in {model.repo}")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        if status == 404:
            return DownloadError(f"{label} not found on {hf_endpoint()}")
        return DownloadError(f"cannot download {label}: HTTP {status} from {hf_endpoint()}")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DownloadError(
        f"cannot reach {hf_endpoint()} to download {label} ({first}), and it is not in the cache "
        f"({hf_cache_dir()}); check the network connection, proxy or HF_ENDPOINT"
    )


def _remote_files(model: ModelConfig) -> list[str]:
    from huggingface_hub import HfApi

    pattern = str(model.file)
    try:
        if GLOB_CHARS & set(pattern):
            info = HfApi(endpoint=hf_endpoint()).model_info(
                str(model.repo), revision=model.revision
            )
            names = [s.rfilename for s in info.siblings or []]
            return _pick(str(model.repo), pattern, names)
        return split_parts(pattern)
    except DownloadError:
        raise
    except Exception as exc:  # network and HTTP errors of huggingface_hub / its HTTP client
        raise _network_error(model, exc) from None


def resolve_hf(
    model: ModelConfig,
    *,
    offline: bool,
    download: bool,
    progress: bool,
    cancel: threading.Event | None = None,
) -> list[Path]:
    """All local files of the model (one, or every part of a split GGUF), downloading if allowed.

    When cancel is set the download stops at the next chunk (DownloadCancelled); the partial
    file stays and the next call resumes it."""
    cached = _cached_files(model)
    if cached is not None:
        return cached
    if offline or not download:
        why = "offline mode is on" if offline else "downloads are disabled"
        raise DownloadError(
            f"{model.repo}/{model.file} (revision {model.revision or 'main'}) is not in the "
            f"Hugging Face cache ({hf_cache_dir()}) and {why}; "
            "run `specchat models pull PAIR` online first"
        )
    from huggingface_hub import hf_hub_download

    paths: list[Path] = []
    for name in _remote_files(model):
        check(cancel, name)
        try:
            with _progress_bars(progress):
                _fetch_blob(model, name, cancel)
                local = hf_hub_download(
                    str(model.repo),
                    name,
                    revision=model.revision,
                    cache_dir=str(hf_cache_dir()),
                    endpoint=hf_endpoint(),
                )
        except DownloadError:
            raise
        except Exception as exc:
            raise _network_error(model, exc) from None
        paths.append(Path(local))
    return paths


def partial_path(repo: str, etag: str) -> Path:
    """Where an unfinished download of a blob is kept between runs."""
    storage = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    return storage / "blobs" / f"{etag}.specchat-partial"


def _fetch_blob(model: ModelConfig, name: str, cancel: threading.Event | None = None) -> None:
    """Download one file's blob into the cache, resuming a partial file left by an earlier run."""
    from urllib.parse import urlsplit

    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(str(model.repo), name, revision=model.revision, endpoint=hf_endpoint())
    meta = get_hf_file_metadata(url)  # no retries: fails at once when the Hub is unreachable
    if not meta.etag or not meta.commit_hash:
        return  # not a Hub answer we understand: hf_hub_download reports it
    partial = partial_path(str(model.repo), meta.etag)
    blob = partial.with_name(meta.etag)
    if blob.exists():
        return
    partial.parent.mkdir(parents=True, exist_ok=True)
    headers = build_hf_headers()
    if urlsplit(meta.location).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)  # signed CDN URL: the token stays on the Hub
    with partial.open("ab") as f:
        done = f.tell()
        if meta.size is not None and done > meta.size:
            f.truncate(0)
            done = 0
        with _small_chunks():
            http_get(
                meta.location,
                CancellableWriter(f, cancel, name, meta.size),  # type: ignore[arg-type]
                resume_size=done,
                headers=headers,
                expected_size=meta.size,
                displayed_filename=name,
            )
    partial.replace(blob)


def remove_cached(path: Path) -> None:
    """Delete a cached file and the blob it points to (after a failed checksum)."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)
