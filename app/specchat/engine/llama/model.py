"""A thin wrapper over llama-cpp-python's low-level API: one model, one context, one sequence.

We drive llama.cpp directly (not `llama_cpp.Llama`) so that logits are computed only for the
positions being verified and the KV cache can be rolled back token-exactly after a rejection."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import llama_cpp as lc
import numpy as np

from specchat.engine.llama.backend import init_backend, model_keeps_state
from specchat.engine.llama.devices import has_gpu
from specchat.engine.llama.rpc import RpcPlacement
from specchat.engine.llama.threads import SharedThreadpool
from specchat.engine.types import ModelInfo, ModelSettings
from specchat.errors import (
    ContextOverflowError,
    GpuOffloadError,
    LoadCancelled,
    ModelLoadError,
    RpcConnectionError,
    SpecchatError,
)

if TYPE_CHECKING:
    from specchat.engine.llama.prompt_cache import ModelSnapshots

GGUF_MAGIC = b"GGUF"
# Most rows of logits one pass may ask for: verification batches stay well under this
# (see README: batched and one-token logits are only bit-identical for small batches).
MAX_OUTPUT_ROWS = 64
# Passes of more tokens than this (prompt processing, a draft catching up) can be aborted midway
# through llama.cpp's abort callback; shorter passes finish (milliseconds) and are not slowed by
# a Python call per graph node.
ABORTABLE_TOKENS = 64
DECODE_ABORTED = 2  # llama_decode's return code when the abort callback stopped it


class DecodeAborted(Exception):
    """A pass was stopped by a cancel request or by close(); the cache holds what it held
    before (plus any whole micro-batches llama.cpp had finished, mirrored in `tokens`)."""


class CacheRollbackError(SpecchatError):
    """llama.cpp could not remove a suffix of the cache (recurrent or hybrid model)."""

def check_gguf_file(path: Path) -> None:
    """Fail early, in one line, for a missing, unreadable or non-GGUF file."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"not a file: {path}")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"not a GGUF file (bad magic {magic!r}): {path}")


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


class LlamaModel:
    """One GGUF model with its own context and KV cache (sequence 0).

    `tokens` mirrors what is in the KV cache, so callers can reuse the longest common prefix."""

    def __init__(self, settings: ModelSettings, model: ctypes.c_void_p, vocab_only: bool) -> None:
        self.settings = settings
        self.path = Path(settings.path)
        self._model = model
        self._vocab = lc.llama_model_get_vocab(model)
        self.n_vocab: int = lc.llama_vocab_n_tokens(self._vocab)
        self._ctx: ctypes.c_void_p | None = None
        self._batch: lc.llama_batch | None = None
        self._mem = None
        self.tokens: list[int] = []  # tokens currently in the KV cache, in order
        self._piece_cache: dict[int, bytes] = {}
        self._eog: set[int] | None = None
        self.vocab_only = vocab_only
        # Recurrent and hybrid models keep a state that cannot be rolled back a few tokens.
        self.keeps_state = model_keeps_state(model)
        # Set by the caller for the duration of a request: long passes stop when it is set.
        self.cancel: threading.Event | None = None
        self._closing = False
        self._lock = threading.RLock()  # held by a running pass and by close()
        self._abort_cb = lc.ggml_abort_callback(self._should_abort)
        # Set when the model's layers are on RPC servers: calls that may talk to them go
        # through its runner (see engine/llama/rpc.py and rpc_runner.py).
        self.rpc: RpcPlacement | None = None
        self.remote = ""  # which part is on RPC servers (ModelInfo.remote)
        # What the context was created with that shapes its KV cache (a saved state's key).
        self.context_params: dict[str, object] = {}
        # Prompt processing speed measured on long passes (a restored state's time saved).
        self.read_ms_per_token = 0.0
        # The prompt cache this model's states go to and come from (engine/llama/prompt_cache.py).
        self.snapshots: ModelSnapshots | None = None

    # ---- loading ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        settings: ModelSettings,
        vocab_only: bool = False,
        threadpool: SharedThreadpool | None = None,
        cancel: threading.Event | None = None,
    ) -> LlamaModel:
        """Load a model and create its context. Setting `cancel` stops the load (between
        tensors) with LoadCancelled."""
        path = Path(settings.path)
        check_gguf_file(path)
        init_backend()
        params = lc.llama_model_default_params()
        progress = _progress_callback(cancel)
        if progress is not None:
            params.progress_callback = progress
        params.n_gpu_layers = settings.n_gpu_layers if not vocab_only else 0
        params.main_gpu = settings.main_gpu
        params.vocab_only = vocab_only
        params.use_extra_bufts = settings.use_extra_bufts
        rpc = None
        if settings.rpc_servers and not vocab_only:
            rpc = RpcPlacement(settings.rpc_servers)
        model = _load_model(path, params, rpc, cancel)
        if not model and cancel is not None and cancel.is_set():
            raise LoadCancelled(f"loading {path.name} was cancelled")
        if not model and rpc is not None:
            raise ModelLoadError(
                f"could not load {path.name} with its layers on RPC server "
                f"{', '.join(settings.rpc_servers)} (out of memory there?); retry with fewer "
                "n_gpu_layers",
                settings=("n_gpu_layers",),
            )
        if not model:
            # (an RPC-enabled build says it supports offload with no GPU: ask for devices)
            if settings.n_gpu_layers and not vocab_only and has_gpu():
                raise GpuOffloadError(
                    f"could not load {path.name} with {settings.n_gpu_layers} GPU layers "
                    "(out of GPU memory?); retry with fewer n_gpu_layers or 0",
                    settings=("n_gpu_layers",),
                )
            raise ModelLoadError(f"cannot load GGUF (corrupt or unsupported file): {path}")
        self = cls(settings, model, vocab_only)
        if rpc is not None:
            rpc.hold()
            self.rpc = rpc
            self.remote = rpc.describe(self.n_layers, settings.n_gpu_layers)
        if not vocab_only:
            self._new_context()
            if threadpool is not None:
                threadpool.attach(self._ctx)
        return self

    def _new_context(self) -> None:
        s = self.settings
        cparams = lc.llama_context_default_params()
        n_ctx_train = lc.llama_model_n_ctx_train(self._model)
        cparams.n_ctx = s.n_ctx if s.n_ctx > 0 else n_ctx_train
        cparams.n_batch = s.n_batch
        cparams.n_ubatch = s.n_batch
        cparams.n_seq_max = 1
        cparams.n_outputs_max = MAX_OUTPUT_ROWS
        threads = s.n_threads or default_threads()
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.no_perf = True
        # Rolling back and reusing a prefix needs the full sliding-window cache (Gemma 3...).
        cparams.swa_full = True
        if s.flash_attn is None:
            cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_AUTO
        else:
            cparams.flash_attn_type = (
                lc.LLAMA_FLASH_ATTN_TYPE_ENABLED
                if s.flash_attn
                else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
            )
        self.context_params = _shape_params(cparams)
        ctx = self._call(lc.llama_init_from_model, self._model, cparams)
        if not ctx:
            with contextlib.suppress(RpcConnectionError):
                self._call(lc.llama_model_free, self._model)
                if self.rpc is not None:
                    self.rpc.release()
            self._model = None
            if s.rpc_servers:
                raise ModelLoadError(
                    f"could not create a context of {cparams.n_ctx} tokens for {self.path.name} "
                    f"on RPC server {', '.join(s.rpc_servers)} (out of memory there?); retry "
                    "with a smaller n_ctx",
                    settings=("n_ctx",),
                )
            if s.n_gpu_layers:
                raise GpuOffloadError(
                    f"could not create a context for {self.path.name} (out of GPU memory?); "
                    "retry with a smaller n_ctx or fewer GPU layers",
                    settings=("n_ctx",),
                )
            raise ModelLoadError(
                f"could not create a context of {cparams.n_ctx} tokens for {self.path}"
            )
        self._ctx = ctx
        self._mem = lc.llama_get_memory(ctx)
        self.n_ctx = lc.llama_n_ctx(ctx)
        self._batch = lc.llama_batch_init(s.n_batch, 0, 1)

    def abort_passes(self) -> None:
        """From now on a long pass stops midway and later passes are refused (before close)."""
        self._closing = True

    def close(self) -> None:
        """Free the model. Safe from another thread while a pass runs: a long pass is aborted,
        a short one finishes first; nothing is freed under it."""
        self.abort_passes()
        with self._lock:
            if self._batch is not None:
                lc.llama_batch_free(self._batch)
                self._batch = None
            if self.rpc is not None and self.rpc.broken:
                # Never freed: ggml would wait for a parked thread (engine/llama/rpc_runner.py).
                self._ctx = self._model = None
                return
            with contextlib.suppress(RpcConnectionError):
                if self._ctx:
                    self._call(lc.llama_free, self._ctx)
                    self._ctx = None
                if self._model:
                    self._call(lc.llama_model_free, self._model)
                    if self.rpc is not None:
                        self.rpc.release()
            self._ctx = self._model = None

    def _call(self, fn: object, *args: object) -> object:
        """A llama.cpp call that may talk to RPC servers: on the model's runner when it has
        some (RpcConnectionError when a server fails meanwhile), else right here."""
        if self.rpc is not None:
            return self.rpc.runner.call(fn, *args)  # type: ignore[arg-type]
        return fn(*args)  # type: ignore[operator]

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        with contextlib.suppress(Exception):
            self.close()

    # ---- metadata ----------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(4096)
        n = lc.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):
            buf = ctypes.create_string_buffer(n + 1)
            lc.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    def chat_template(self) -> str | None:
        raw = lc.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", errors="replace") if raw else None

    @property
    def architecture(self) -> str:
        return self.meta("general.architecture") or "unknown"

    @property
    def n_layers(self) -> int:
        return lc.llama_model_n_layer(self._model)

    @property
    def quantization(self) -> str:
        if hasattr(lc, "llama_ftype_name") and hasattr(lc, "llama_model_ftype"):
            name = lc.llama_ftype_name(lc.llama_model_ftype(self._model))
            return name.decode(errors="replace") if name else ""
        # older bindings: the description reads "<arch> <size> <file type>"
        buf = ctypes.create_string_buffer(256)
        n = lc.llama_model_desc(self._model, buf, len(buf))
        parts = buf.value.decode(errors="replace").split(" ", 2) if n > 0 else []
        return parts[2] if len(parts) == 3 else ""

    def info(self) -> ModelInfo:
        n_layers = self.n_layers
        ngl = self.settings.n_gpu_layers
        offloaded = 0
        if (self.rpc is not None or has_gpu()) and not self.vocab_only:
            # llama.cpp: -1 is all, N the output layer and the last N - 1 blocks
            offloaded = n_layers + 1 if ngl < 0 else min(ngl, n_layers + 1)
        return ModelInfo(
            name=self.meta("general.name") or self.path.stem,
            path=self.path,
            architecture=self.architecture,
            n_vocab=self.n_vocab,
            n_params=lc.llama_model_n_params(self._model),
            size_bytes=lc.llama_model_size(self._model),
            n_ctx_train=lc.llama_model_n_ctx_train(self._model),
            n_ctx=getattr(self, "n_ctx", 0),
            n_layers=n_layers,
            n_gpu_layers=offloaded,
            quantization=self.quantization,
            remote=self.remote,
        )

    # ---- vocabulary --------------------------------------------------------------------------

    @property
    def vocab(self) -> ctypes.c_void_p:
        """llama.cpp's vocabulary handle (for samplers built over it, e.g. a grammar)."""
        return self._vocab

    @property
    def vocab_type(self) -> int:
        return lc.llama_vocab_type(self._vocab)

    @property
    def bos(self) -> int:
        return lc.llama_vocab_bos(self._vocab)

    @property
    def eos(self) -> int:
        return lc.llama_vocab_eos(self._vocab)

    @property
    def add_bos(self) -> bool:
        return bool(lc.llama_vocab_get_add_bos(self._vocab))

    @property
    def add_eos(self) -> bool:
        return bool(lc.llama_vocab_get_add_eos(self._vocab))

    def token_text(self, token: int) -> bytes:
        raw = lc.llama_vocab_get_text(self._vocab, token)
        return raw if raw else b""

    def is_eog(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self._vocab, token))

    def is_control(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_control(self._vocab, token))

    def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (lc.llama_token * cap)()
        n = lc.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (lc.llama_token * cap)()
            n = lc.llama_tokenize(
                self._vocab, data, len(data), buf, cap, add_special, parse_special
            )
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The token's bytes as they appear in output text (control tokens render empty)."""
        cached = self._piece_cache.get(token)
        if cached is None:
            buf = ctypes.create_string_buffer(64)
            n = lc.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = lc.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            cached = buf.raw[:n]
            self._piece_cache[token] = cached
        return cached

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    # ---- evaluation --------------------------------------------------------------------------

    def truncate(self, n_past: int) -> None:
        """Roll the KV cache back so that only the first n_past tokens remain.

        Raises CacheRollbackError, with the cache untouched, when llama.cpp cannot (recurrent
        and hybrid models keep a state that cannot lose a suffix); callers that may meet such
        a model check `keeps_state` and reset() instead."""
        if n_past >= len(self.tokens):
            return
        if n_past <= 0:
            self.reset()
            return
        if not lc.llama_memory_seq_rm(self._mem, 0, n_past, -1):
            raise CacheRollbackError(
                f"{self.path.name}: llama.cpp cannot roll the cache back to {n_past} of "
                f"{len(self.tokens)} tokens"
            )
        del self.tokens[n_past:]

    def reset(self) -> None:
        self._call(lc.llama_memory_clear, self._mem, True)
        self.tokens = []

    def decode(self, tokens: Sequence[int], logits: str | None = "last") -> None:
        """Append tokens to the KV cache. logits: "last", "all" (rows for every token) or None.

        With "all", len(tokens) must not exceed MAX_OUTPUT_ROWS and n_batch."""
        n = len(tokens)
        if n == 0:
            return
        if len(self.tokens) + n > self.n_ctx:
            raise ContextOverflowError(
                f"context full: {len(self.tokens) + n} tokens do not fit in n_ctx={self.n_ctx}"
            )
        if logits == "all" and n > min(MAX_OUTPUT_ROWS, self.settings.n_batch):
            raise ValueError(f"cannot request logits for {n} tokens in one pass")
        with self._lock:
            if not self._ctx or self._closing:
                raise DecodeAborted(f"{self.path.name} is closed")
            abortable = n > ABORTABLE_TOKENS
            if abortable:
                lc.llama_set_abort_callback(self._ctx, self._abort_cb, None)
            t0 = time.perf_counter()
            try:
                self._decode_chunks(tokens, logits)
            finally:
                if abortable and self._ctx:
                    lc.llama_set_abort_callback(self._ctx, lc.ggml_abort_callback(), None)
            if abortable:
                self.read_ms_per_token = (time.perf_counter() - t0) * 1000 / n

    def _giving_up(self) -> bool:
        return self._should_abort(None)

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        cancel = self.cancel
        return self._closing or (cancel is not None and cancel.is_set())

    def _decode_chunks(self, tokens: Sequence[int], logits: str | None) -> None:
        n = len(tokens)
        batch = self._batch
        step = self.settings.n_batch
        for start in range(0, n, step):
            chunk = tokens[start : start + step]
            last_chunk = start + step >= n
            pos0 = len(self.tokens)
            m = len(chunk)
            batch.n_tokens = m
            tok, pos, nseq, seq, out = (
                batch.token,
                batch.pos,
                batch.n_seq_id,
                batch.seq_id,
                batch.logits,
            )
            want_all = logits == "all"
            for i, t in enumerate(chunk):
                tok[i] = t
                pos[i] = pos0 + i
                nseq[i] = 1
                seq[i][0] = 0
                out[i] = want_all
            if logits == "last" and last_chunk:
                out[m - 1] = True
            if self._should_abort(None) and n > ABORTABLE_TOKENS:
                raise DecodeAborted(f"evaluation stopped on {self.path.name}")
            if self.rpc is not None:  # a stuck server: a cancel gives up (rpc_runner.py)
                rc = self.rpc.runner.call(
                    _decode_and_wait, self._ctx, batch, give_up=self._giving_up
                )
            else:
                rc = lc.llama_decode(self._ctx, batch)
            if rc != 0:
                self._after_failed_chunk(chunk, pos0)
                if rc == DECODE_ABORTED:
                    raise DecodeAborted(f"evaluation stopped on {self.path.name}")
                raise ModelLoadError(f"llama_decode failed with code {rc} on {self.path.name}")
            self.tokens.extend(chunk)

    def _after_failed_chunk(self, chunk: Sequence[int], pos0: int) -> None:
        """Keep `tokens` true to the cache after a failed or aborted pass. llama.cpp keeps the
        micro-batches it finished and removes the rest; mirror that, or start over when the
        cache cannot be made to agree (a recurrent model's state)."""
        kept = lc.llama_memory_seq_pos_max(self._mem, 0) + 1
        if pos0 <= kept <= pos0 + len(chunk) and (
            kept == pos0 + len(chunk) or lc.llama_memory_seq_rm(self._mem, 0, kept, -1)
        ):
            self.tokens.extend(chunk[: kept - pos0])
        else:
            self.reset()

    # ---- sequence state (the prompt cache, engine/llama/prompt_cache.py) -----------------------

    def save_state(self) -> bytearray:
        """Sequence 0's state (its KV cells) as llama.cpp serializes it; `tokens` says what
        it holds."""
        with self._lock:
            if not self._ctx or self._closing:
                raise DecodeAborted(f"{self.path.name} is closed")
            size = self._call(lc.llama_state_seq_get_size, self._ctx, 0)
            data = bytearray(size)
            if size:
                buf = (ctypes.c_uint8 * size).from_buffer(data)
                n = self._call(lc.llama_state_seq_get_data, self._ctx, buf, size, 0)
                del buf  # (a live ctypes view would pin the bytearray's size)
                del data[n:]
            return data

    def load_state(self, data: bytearray, tokens: Sequence[int]) -> bool:
        """Replace sequence 0 with a saved state holding `tokens`. False when llama.cpp refuses
        it (not a state of this model and context); the cache is then empty."""
        with self._lock:
            if not self._ctx or self._closing:
                raise DecodeAborted(f"{self.path.name} is closed")
            buf = (ctypes.c_uint8 * len(data)).from_buffer(data)
            n = self._call(lc.llama_state_seq_set_data, self._ctx, buf, len(data), 0)
            del buf
            if n == 0 or lc.llama_memory_seq_pos_max(self._mem, 0) + 1 != len(tokens):
                self.reset()
                return False
            self.tokens = list(tokens)
            return True

    def logits(self, row: int = -1) -> np.ndarray:
        """A view of one row of logits from the last decode (valid until the next decode)."""
        if not self._ctx:
            raise DecodeAborted(f"{self.path.name} is closed")
        ptr = lc.llama_get_logits_ith(self._ctx, row)
        if not ptr:
            raise RuntimeError(f"no logits for row {row}")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))


def _load_model(
    path: Path, params: lc.llama_model_params, rpc: RpcPlacement | None,
    cancel: threading.Event | None,
) -> ctypes.c_void_p | None:
    """llama_model_load_from_file; with RPC servers on the placement's runner (a server lost
    while the weights go over is an RpcConnectionError, a stuck one is given up after a cancel)."""
    if rpc is None:
        return lc.llama_model_load_from_file(str(path).encode(), params)
    rpc.apply(params)
    give_up = cancel.is_set if cancel is not None else None
    model = rpc.runner.call(
        lc.llama_model_load_from_file, str(path).encode(), params, give_up=give_up
    )
    if not model:
        rpc.runner.stop()
    return model


def _shape_params(cparams: lc.llama_context_params) -> dict[str, object]:
    """The context parameters that decide what a saved sequence state means."""
    names = (
        "n_ctx", "n_batch", "n_ubatch", "n_seq_max", "n_threads", "n_threads_batch",
        "rope_scaling_type", "pooling_type", "attention_type", "flash_attn_type",
        "rope_freq_base", "rope_freq_scale", "yarn_ext_factor", "yarn_attn_factor",
        "yarn_beta_fast", "yarn_beta_slow", "yarn_orig_ctx", "type_k", "type_v",
        "offload_kqv", "swa_full", "kv_unified",
    )
    return {name: getattr(cparams, name) for name in names if hasattr(cparams, name)}


def _decode_and_wait(ctx: ctypes.c_void_p, batch: lc.llama_batch) -> int:
    """llama_decode, then wait for the pass to finish: backends such as RPC compute
    asynchronously, and reading the logits later would wait outside the RPC runner."""
    rc = lc.llama_decode(ctx, batch)
    lc.llama_synchronize(ctx)
    return rc


def _progress_callback(cancel: threading.Event | None) -> object | None:
    """A llama.cpp load-progress callback that stops the load once `cancel` is set."""
    if cancel is None:
        return None

    def progress(_fraction: float, _data: ctypes.c_void_p) -> bool:
        return not cancel.is_set()

    return lc.llama_progress_callback(progress)
