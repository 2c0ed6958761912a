"""The prompt cache: saved KV states of both models, keyed by the token prefix they hold.

Within one chat each model's live KV cache already holds the conversation; this keeps copies
(llama.cpp's per-sequence state, `LlamaModel.save_state`) for when the live cache holds
something else: another chat, another API client's conversation, an older branch of this chat,
or nothing at all after a restart. Before a prompt pass the longest saved prefix of the new
prompt is restored when it beats what the live cache shares, and only the rest is read.

Two tiers: memory (least recently used out first, a byte budget) and files in one directory
(oldest first out, a byte budget), written atomically (a temporary file, then os.replace) so
that several processes can share the directory. A snapshot is found only under a key naming
everything that changes what its bytes mean (model file, llama.cpp build, context shape,
offload, role); anything else is a miss. A file that is damaged, truncated or not ours is
removed with one notice; a full disk turns the disk tier off with one notice."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import struct
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from specchat.engine.llama.model import LlamaModel

MAGIC = b"SPCSEQ01"  # the format's version is part of the magic
SUFFIX = ".seq"
TEMP_PREFIX = ".tmp-"
STALE_TEMP_S = 3600  # a temporary file this old was left by a process that died mid-write
MIN_TOKENS = 64  # shorter states are re-read rather than kept (milliseconds)
MIN_GAIN = 32  # a restore must spare at least this many tokens of reading
HEAD = struct.Struct("<8sI")  # magic, header length


class DamagedSnapshot(Exception):
    """A snapshot file that is not a whole, valid snapshot."""


@dataclass(frozen=True)
class CacheBudget:
    memory_bytes: int
    disk_bytes: int
    directory: Path | None  # None: memory only


@dataclass
class Snapshot:
    key: str
    tokens: np.ndarray  # int32: what the state holds, in order
    data: bytearray | None  # None while only on disk
    ms_per_token: float  # reading speed measured where it was made (for "time saved")
    name: str  # its file name in the directory

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 0


@dataclass
class Tally:
    """What restores spared since it was last taken."""

    restored: dict[str, int] = field(default_factory=dict)  # role -> tokens
    restore_ms: float = 0.0
    saved_ms: float = 0.0  # reading time spared, net of the restore time


@dataclass(frozen=True)
class DiskEntry:
    path: Path
    size: int
    mtime: float
    role: str
    model: str
    n_tokens: int


def file_identity(path: Path) -> str:
    """Size, modification time and a hash of the first MiB (the GGUF header and tensor table)."""
    st = path.stat()
    with path.open("rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()[:32]
    return f"{st.st_size}:{st.st_mtime_ns}:{head}"


def model_key(model: LlamaModel, role: str) -> str:
    """Everything that changes what a saved state of `model` means, as one string."""
    import llama_cpp as lc

    s = model.settings
    parts = {
        "role": role,
        "model": model.path.name,
        "file": file_identity(model.path),
        "llama_cpp": lc.__version__,
        "system": lc.llama_print_system_info().decode(errors="replace"),
        "context": model.context_params,
        "n_gpu_layers": s.n_gpu_layers,
        "main_gpu": s.main_gpu,
        "rpc": list(s.rpc_servers),
        "extra_bufts": s.use_extra_bufts,
        "flash_attn": s.flash_attn,
    }
    return json.dumps(parts, sort_keys=True)


def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _file_name(key: str, tokens: np.ndarray) -> str:
    return f"{_key_id(key)}-{hashlib.sha256(tokens.tobytes()).hexdigest()[:16]}{SUFFIX}"


def _begins(old: Snapshot, new: Snapshot) -> bool:
    """`old` holds a strict prefix of what `new` holds (same key)."""
    n = len(old.tokens)
    return old.key == new.key and n < len(new.tokens) and np.array_equal(old.tokens, new.tokens[:n])


def _usable(tokens: np.ndarray, prompt: np.ndarray, limit: int, stateful: bool) -> int:
    """How many of the prompt's first `limit` tokens a snapshot of `tokens` can give. A
    recurrent model's state cannot lose a suffix: all of it or nothing."""
    n = min(len(tokens), limit)
    same = tokens[:n] == prompt[:n]
    shared = n if bool(same.all()) else int(np.argmin(same))
    if stateful and shared < len(tokens):
        return 0
    return shared


class PromptCache:
    """Snapshots of models' sequence states in memory and on disk. Used from the engine's
    thread; files are written by one background thread."""

    def __init__(self, budget: CacheBudget) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, Snapshot] = OrderedDict()  # name -> snapshot, LRU first
        self._memory_bytes = 0
        self._disk_on = budget.directory is not None and budget.disk_bytes > 0
        self._headers: dict[str, tuple[int, int, Snapshot]] = {}  # name -> (size, mtime, head)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="prompt-cache")
        self._pending: list[Future[None]] = []
        self._notices: list[str] = []
        self._tally = Tally()
        if self._disk_on:
            self._open_directory()

    # ---- the engine's side ---------------------------------------------------------------------

    def restore(self, key: str, model: LlamaModel, prompt: Sequence[int], role: str) -> int:
        """Bring `model`'s cache to the longest saved prefix of `prompt` (all but its last
        token, which is read for its logits) when that beats what the cache shares now.
        Returns how many tokens the restore put in place (0: nothing restored)."""
        limit = len(prompt) - 1
        if limit < MIN_GAIN:
            return 0
        wanted = np.asarray(prompt, dtype=np.int32)
        live = _usable(np.asarray(model.tokens, dtype=np.int32), wanted, limit, False)
        if limit - live < MIN_GAIN:
            return 0
        for snap, usable in self._candidates(key, wanted, limit, model.keeps_state):
            if usable - live < MIN_GAIN:
                return 0
            t0 = time.perf_counter()
            if not self._load_into(snap, model):
                continue
            model.truncate(usable)
            self._count(role, usable, snap.ms_per_token, time.perf_counter() - t0)
            return usable
        return 0

    def save(self, key: str, model: LlamaModel) -> None:
        """Keep `model`'s current state (memory now, a file soon after)."""
        if len(model.tokens) < MIN_TOKENS:
            return
        tokens = np.asarray(model.tokens, dtype=np.int32)
        name = _file_name(key, tokens)
        with self._lock:
            if name in self._memory:
                self._memory.move_to_end(name)
                return
        snap = Snapshot(key, tokens, model.save_state(), model.read_ms_per_token, name)
        self._forget_superseded(snap, model.keeps_state)
        self._remember(snap)
        if self._disk_on:
            self._pending.append(self._writer.submit(self._write, snap, model.keeps_state))

    def take_tally(self) -> Tally:
        with self._lock:
            tally, self._tally = self._tally, Tally()
        return tally

    def take_notices(self) -> list[str]:
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def flush(self) -> None:
        """Wait for the files still being written (before quitting)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        self.flush()
        self._writer.shutdown(wait=True)

    # ---- choosing and loading --------------------------------------------------------------------

    def _candidates(
        self, key: str, prompt: np.ndarray, limit: int, stateful: bool
    ) -> list[tuple[Snapshot, int]]:
        """Snapshots under `key`, most tokens usable first (memory before disk on a tie)."""
        with self._lock:
            found = {s.name: s for s in self._memory.values() if s.key == key}
        for snap in self._disk_heads(key):
            found.setdefault(snap.name, snap)
        ranked = [(s, _usable(s.tokens, prompt, limit, stateful)) for s in found.values()]
        ranked.sort(key=lambda su: (su[1], su[0].data is not None), reverse=True)
        return ranked

    def _load_into(self, snap: Snapshot, model: LlamaModel) -> bool:
        data = snap.data
        if data is None:
            data = self._read_data(snap)
            if data is None:
                return False
        if not model.load_state(data, snap.tokens.tolist()):
            self._discard(snap, "llama.cpp refused it")
            return False
        with self._lock:
            if snap.name in self._memory:
                self._memory.move_to_end(snap.name)
                return True
        if snap.data is None:  # read from disk: keep it in memory for the next time
            self._remember(Snapshot(snap.key, snap.tokens, data, snap.ms_per_token, snap.name))
            self._touch(snap.name)
        return True

    def _count(self, role: str, tokens: int, ms_per_token: float, restore_s: float) -> None:
        with self._lock:
            t = self._tally
            t.restored[role] = t.restored.get(role, 0) + tokens
            t.restore_ms += restore_s * 1000
            t.saved_ms += max(0.0, tokens * ms_per_token - restore_s * 1000)

    # ---- memory tier ---------------------------------------------------------------------------

    def _remember(self, snap: Snapshot) -> None:
        if snap.size > self.budget.memory_bytes:
            return
        with self._lock:
            old = self._memory.pop(snap.name, None)
            if old is not None:
                self._memory_bytes -= old.size
            self._memory[snap.name] = snap
            self._memory_bytes += snap.size
            while self._memory_bytes > self.budget.memory_bytes:
                _, gone = self._memory.popitem(last=False)
                self._memory_bytes -= gone.size

    def _forget_superseded(self, snap: Snapshot, stateful: bool) -> None:
        """A state whose tokens begin the new one's is not needed any more: the new one,
        cut back, gives the same (not so for a recurrent state, which cannot be cut)."""
        if stateful:
            return
        with self._lock:
            for old in [s for s in self._memory.values() if _begins(s, snap)]:
                self._memory.pop(old.name)
                self._memory_bytes -= old.size

    # ---- disk tier -----------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        assert self.budget.directory is not None
        return self.budget.directory

    def _open_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._disk_off(f"cannot create {self.directory} ({exc.strerror})")
            return
        now = time.time()
        for path in self.directory.glob(f"{TEMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_TEMP_S:
                    path.unlink()

    def _disk_heads(self, key: str) -> list[Snapshot]:
        """The snapshots on disk under `key` (their headers and tokens, not their data)."""
        if not self._disk_on:
            return []
        prefix = _key_id(key)
        heads = []
        for path in self.directory.glob(f"{prefix}-*{SUFFIX}"):
            head = self._head(path)
            if head is not None and head.key == key:
                heads.append(head)
        return heads

    def _head(self, path: Path) -> Snapshot | None:
        try:
            st = path.stat()
        except OSError:
            return None  # removed meanwhile (another process's eviction)
        known = self._headers.get(path.name)
        if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
            return known[2]
        try:
            with path.open("rb") as f:
                head = _read_head(f, st.st_size)
        except FileNotFoundError:
            return None
        except (OSError, DamagedSnapshot) as exc:
            self._damaged(path.name, str(exc))
            return None
        self._headers[path.name] = (st.st_size, st.st_mtime_ns, head)
        return head

    def _read_data(self, snap: Snapshot) -> bytearray | None:
        path = self.directory / snap.name
        try:
            with path.open("rb") as f:
                head = _read_head(f, os.fstat(f.fileno()).st_size)
                data = bytearray(head.size_on_disk)
                if f.readinto(data) != len(data):
                    raise DamagedSnapshot("truncated")
        except FileNotFoundError:
            return None
        except (OSError, DamagedSnapshot) as exc:
            self._damaged(snap.name, str(exc))
            return None
        if zlib.crc32(data, zlib.crc32(head.tokens.tobytes())) != head.crc:
            self._damaged(snap.name, "checksum mismatch")
            return None
        return data

    def _write(self, snap: Snapshot, stateful: bool) -> None:
        """Write one snapshot file atomically, then keep the directory within its budget."""
        if not self._disk_on or snap.data is None:
            return
        path = self.directory / snap.name
        if path.exists():
            self._touch(snap.name)
            return
        blob_head = _encode_head(snap)
        if len(blob_head) + snap.size > self.budget.disk_bytes:
            return  # larger than the whole budget: memory only
        temp = self.directory / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
        try:
            with temp.open("wb") as f:
                f.write(blob_head)
                f.write(snap.data)
            os.replace(temp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            self._disk_off(
                "the disk is full" if full else f"cannot write {path} ({exc.strerror or exc})"
            )
            return
        if not stateful:
            for old in self._disk_heads(snap.key):
                if _begins(old, snap):
                    self._unlink(old.name)
        self._evict_files()

    def _evict_files(self) -> None:
        """Oldest files out until the directory fits its budget (any process may do this)."""
        files = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):
                st = path.stat()
                files.append((st.st_mtime, st.st_size, path.name))
        files.sort()
        total = sum(size for _, size, _ in files)
        for _, size, name in files:
            if total <= self.budget.disk_bytes:
                break
            self._unlink(name)
            total -= size

    def _touch(self, name: str) -> None:
        """A snapshot just used is the newest: the last to go."""
        with contextlib.suppress(OSError):
            os.utime(self.directory / name)
        self._headers.pop(name, None)

    def _unlink(self, name: str) -> None:
        with contextlib.suppress(OSError):
            (self.directory / name).unlink()
        self._headers.pop(name, None)

    def _discard(self, snap: Snapshot, why: str) -> None:
        with self._lock:
            if self._memory.pop(snap.name, None) is not None:
                self._memory_bytes -= snap.size
        if self._disk_on and (self.directory / snap.name).exists():
            self._damaged(snap.name, why)

    def _damaged(self, name: str, why: str) -> None:
        self._unlink(name)
        self._notice(f"prompt cache: removed the damaged file {name} ({why})")

    def _disk_off(self, why: str) -> None:
        if self._disk_on:
            self._disk_on = False
            self._notice(f"prompt cache: {why}; saving to disk is off for this session")

    def _notice(self, message: str) -> None:
        with self._lock:
            self._notices.append(message)


# ---- the file format ---------------------------------------------------------------------------
# MAGIC, u32 header length, header (JSON: key, n_tokens, data_bytes, crc32, ms_per_token),
# the tokens (int32 little-endian), the state's bytes. The crc covers tokens and state.


def _encode_head(snap: Snapshot) -> bytes:
    assert snap.data is not None
    tokens = snap.tokens.astype("<i4").tobytes()
    header = json.dumps(
        {
            "key": snap.key,
            "n_tokens": len(snap.tokens),
            "data_bytes": len(snap.data),
            "crc32": zlib.crc32(snap.data, zlib.crc32(tokens)),
            "ms_per_token": snap.ms_per_token,
        }
    ).encode()
    return HEAD.pack(MAGIC, len(header)) + header + tokens


@dataclass
class _Head(Snapshot):
    crc: int = 0
    size_on_disk: int = 0


def _read_head(f: BinaryIO, file_size: int) -> _Head:
    """Read a snapshot file's header and tokens; DamagedSnapshot unless the file is whole."""
    raw = f.read(HEAD.size)
    if len(raw) < HEAD.size:
        raise DamagedSnapshot("empty" if not raw else "truncated")
    magic, n_header = HEAD.unpack(raw)
    if magic != MAGIC:
        raise DamagedSnapshot("not a specchat prompt-cache file")
    try:
        header = json.loads(f.read(n_header))
        key, n_tokens = str(header["key"]), int(header["n_tokens"])
        data_bytes, crc = int(header["data_bytes"]), int(header["crc32"])
        ms_per_token = float(header["ms_per_token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedSnapshot(f"bad header: {exc}") from None
    data_at = HEAD.size + n_header + 4 * n_tokens
    if file_size != data_at + data_bytes:
        raise DamagedSnapshot("truncated" if file_size < data_at + data_bytes else "wrong size")
    tokens = np.frombuffer(f.read(4 * n_tokens), dtype="<i4").astype(np.int32)
    name = Path(f.name).name
    return _Head(key, tokens, None, ms_per_token, name, crc=crc, size_on_disk=data_bytes)


# ---- the cache's contents, for `specchat cache` ------------------------------------------------


def list_files(directory: Path) -> list[DiskEntry]:
    """The snapshot files in `directory`, newest first (damaged ones are listed as such)."""
    entries = [e for e in map(_entry, directory.glob(f"*{SUFFIX}")) if e is not None]
    entries.sort(key=lambda e: e.mtime, reverse=True)
    return entries


def _entry(path: Path) -> DiskEntry | None:
    try:
        st = path.stat()
    except OSError:
        return None  # removed meanwhile
    try:
        with path.open("rb") as f:
            head = _read_head(f, st.st_size)
        parts = json.loads(head.key)
        role, model, n = str(parts["role"]), str(parts["model"]), len(head.tokens)
    except (OSError, DamagedSnapshot, ValueError, KeyError, TypeError):
        role, model, n = "?", "(damaged)", 0
    return DiskEntry(path, st.st_size, st.st_mtime, role, model, n)


def clear_files(directory: Path) -> tuple[int, int]:
    """Remove every snapshot file; returns (files, bytes) removed."""
    count = size = 0
    for path in [*directory.glob(f"*{SUFFIX}"), *directory.glob(f"{TEMP_PREFIX}*")]:
        with contextlib.suppress(OSError):
            n = path.stat().st_size
            path.unlink()
            count, size = count + 1, size + n
    return count, size


# ---- the hooks the engine and the drafters call ---------------------------------------------


@dataclass
class ModelSnapshots:
    """One model's view of the cache: its key and role."""

    cache: PromptCache
    key: str
    role: str


def attach(cache: PromptCache | None, model: LlamaModel | None, role: str) -> None:
    if model is not None:
        view = None if cache is None else ModelSnapshots(cache, model_key(model, role), role)
        model.snapshots = view


def restore_prefix(model: LlamaModel, prompt: Sequence[int]) -> int:
    """Before a prompt pass: restore the longest saved prefix of `prompt` (no cache: nothing)."""
    view = model.snapshots
    if view is None or not prompt:
        return 0
    return view.cache.restore(view.key, model, prompt, view.role)


def save_state(model: LlamaModel | None) -> None:
    """After a reply: keep what the model's cache holds (no cache: nothing)."""
    if model is not None and model.snapshots is not None:
        view = model.snapshots
        view.cache.save(view.key, model)
