"""What the draft-length controller learned, kept between runs.

One JSON file (the front end chooses where: specchat's cache folder) maps a key to a controller
snapshot (adaptive.DraftLengthController.snapshot). The key names what the measurements depend
on: the model files (path, size, modification time), whether the draft is cross-vocabulary, the
backend and the thread count. A one-shot `specchat ask` then starts from what the last run
measured instead of exploring from scratch. A missing, unreadable or foreign file is ignored:
learning is an optimisation, never a reason to fail."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

MAX_ENTRIES = 64  # the least recently saved entries are dropped beyond this


def file_identity(path: Path) -> str:
    """A model file as the measurements see it: resolved path, size, modification time."""
    try:
        st = path.stat()
    except OSError:
        return f"{path}:missing"
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def learned_key(
    target: Path,
    draft: Path | None,
    backend: str,
    n_threads: int | None,
    cross_vocab: bool = False,
    extra: str = "",
) -> str:
    parts = [
        file_identity(target),
        file_identity(draft) if draft is not None else "no-draft",
        f"cross={int(cross_vocab)}",
        f"backend={backend}",
        f"threads={n_threads}",
        extra,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class LearnedStore:
    """Controller snapshots by key, in one small JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def load(self, key: str) -> dict[str, object] | None:
        entry = self._read().get(key)
        state = entry.get("state") if entry else None
        return state if isinstance(state, dict) else None

    def save(self, key: str, state: Mapping[str, object]) -> bool:
        """Write (atomically) this key's snapshot; False when the file cannot be written."""
        data = self._read()
        data[key] = {"saved": time.time(), "state": dict(state)}
        if len(data) > MAX_ENTRIES:
            newest = sorted(data, key=lambda k: _saved(data[k]), reverse=True)[:MAX_ENTRIES]
            data = {k: data[k] for k in newest}
        tmp: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".learned-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)
        except OSError:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            return False
        return True


def _saved(entry: Mapping[str, object]) -> float:
    value = entry.get("saved")
    return float(value) if isinstance(value, (int, float)) else 0.0
