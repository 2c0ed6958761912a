"""Hugging Face downloads through huggingface_hub's standard cache.

A file already in the cache is used without touching the network. Otherwise one metadata request
checks that the Hub answers (so a dead network fails in one line, without minutes of retries)
and `hf_hub_download` fetches the file with its progress bar; it retries and resumes a broken
transfer with HTTP Range requests. Globs are matched against the repo listing (online) or the
cached snapshot (offline); split GGUFs (`-00001-of-00003.gguf`) are fetched whole."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from specchat.config.paths import hf_cache_dir, hf_endpoint
from specchat.config.schema import ModelConfig
from specchat.errors import DownloadError

SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
GLOB_CHARS = set("*?[")


def _silent_tqdm() -> Any:
    from tqdm.auto import tqdm

    class Silent(tqdm):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


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
        path = snap / pattern
        return [path] if path.is_file() else None
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
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

    pattern = str(model.file)
    try:
        if GLOB_CHARS & set(pattern):
            info = HfApi(endpoint=hf_endpoint()).model_info(
                str(model.repo), revision=model.revision
            )
            names = [s.rfilename for s in info.siblings or []]
            return _pick(str(model.repo), pattern, names)
        url = hf_hub_url(str(model.repo), pattern, revision=model.revision, endpoint=hf_endpoint())
        get_hf_file_metadata(url)  # fails fast (no retries) when the Hub cannot be reached
        return [pattern]
    except DownloadError:
        raise
    except Exception as exc:  # network and HTTP errors of huggingface_hub / its HTTP client
        raise _network_error(model, exc) from None


def resolve_hf(model: ModelConfig, *, offline: bool, download: bool, progress: bool) -> list[Path]:
    """All local files of the model (one, or every part of a split GGUF), downloading if allowed."""
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
        try:
            local = hf_hub_download(
                str(model.repo),
                name,
                revision=model.revision,
                cache_dir=str(hf_cache_dir()),
                endpoint=hf_endpoint(),
                tqdm_class=None if progress else _silent_tqdm(),
            )
        except Exception as exc:
            raise _network_error(model, exc) from None
        paths.append(Path(local))
    return paths


def remove_cached(path: Path) -> None:
    """Delete a cached file and the blob it points to (after a failed checksum)."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)
