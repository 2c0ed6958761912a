"""Which running specchat owns a streaming reply: one lock file per open store.

Each open ChatStore creates `<history>.owners/<token>.lock` and holds an OS lock on it
(flock; LockFile on Windows) until it closes. The kernel drops the lock when the process dies,
kill -9 included, so another instance can tell a live owner (the lock is held) from a dead one
(the lock can be taken, or the file is gone) without trusting process ids, which get reused."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def owners_dir(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".owners")


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


class InstanceLock:
    """Held for as long as this store is open; its token marks the replies it streams."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.token = uuid.uuid4().hex
        self.path = folder / f"{self.token}.lock"
        self._fd: int | None = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        if not _try_lock(self._fd):  # a fresh random name: cannot be held by anyone else
            os.close(self._fd)
            raise OSError(f"cannot lock {self.path}")
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # first, so nobody sees a dead owner's file in between
        with contextlib.suppress(OSError):
            os.close(self._fd)  # closing drops the lock
        self._fd = None


def owner_alive(folder: Path, token: str | None) -> bool:
    """True while the instance that wrote `token` still runs. A dead owner's file is removed."""
    if not token or token.strip(".") != token or "/" in token or "\\" in token:
        return False
    path = folder / f"{token}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:  # gone: its owner closed or was swept
        return False
    try:
        if not _try_lock(fd):
            return True
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    finally:
        os.close(fd)


def sweep(folder: Path, keep: str) -> None:
    """Remove the lock files of dead instances (left by crashes)."""
    with contextlib.suppress(OSError):
        for path in folder.glob("*.lock"):
            if path.stem != keep:
                owner_alive(folder, path.stem)
