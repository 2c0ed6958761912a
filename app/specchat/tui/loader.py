"""Glue between the chat app and the model registry / model flags, kept in one place.

Everything here runs on the engine thread except pairs(), initial_label(), recent() and
check() (the open-model dialog's worker thread)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Union

from specchat.engine.protocol import ChatEngine
from specchat.engine.types import GenerationSettings, ModelSettings
from specchat.errors import SpecchatError
from specchat.pair_check import PairReport
from specchat.pair_request import ModelRequest, PairRequest

if TYPE_CHECKING:
    from specchat.engine.llama.prompt_cache import PromptCache

RECENT_MAX = 8  # GGUF pairs kept in the open-model dialog's recent list


@dataclass(frozen=True)
class PairOption:
    name: str
    description: str = ""
    target: str = ""
    draft: str | None = None


@dataclass(frozen=True)
class ModelFiles:
    """A pair opened as files: a target GGUF and, optionally, a draft GGUF."""

    target: Path
    draft: Path | None = None
    cross_vocab: bool = False  # draft with a different vocabulary (slower; needs asking)

    @property
    def label(self) -> str:
        draft = f" + {self.draft.name}" if self.draft is not None else ""
        return f"model {self.target.name}{draft}"


# What to load: a pair by name, files, or None (what the command line asked for)
PairRef = Union[str, ModelFiles, None]  # noqa: UP007 (a runtime alias on Python 3.10)


def same_pair(a: PairRef, b: PairRef) -> bool:
    """The same models (files compare by path; the cross-vocabulary choice does not count)."""
    if isinstance(a, ModelFiles) and isinstance(b, ModelFiles):
        return (a.target, a.draft) == (b.target, b.draft)
    return a == b


def ref_label(ref: PairRef) -> str:
    if isinstance(ref, ModelFiles):
        return ref.label
    return f"pair {ref}" if ref else "the default pair"


class EngineLoader(Protocol):
    generation: GenerationSettings  # defaults for chats; valid after a load
    current: PairRef  # what the last load resolved to (the default pair by its name)

    def initial_label(self) -> str:
        """What loads at start ("pair smollm2", "model.gguf")."""
        ...

    def pairs(self) -> list[PairOption]:
        """The registry's pairs. Raises SpecchatError on a bad config."""
        ...

    def load(self, pair: PairRef, cancel: threading.Event | None = None) -> ChatEngine:
        """Load a pair by name, files, or (None) what the command line asked for. Engine
        thread; downloads report progress through specchat.sources.cancel.reporting.

        Downloads and loading stop soon after cancel is set (raising a SpecchatError)."""
        ...

    def recent(self) -> list[ModelFiles]:
        """GGUF pairs opened as files before, newest first."""
        ...

    def check(self, files: ModelFiles) -> PairReport:
        """`specchat models check` for the files (metadata only). Raises SpecchatError."""
        ...


def ui_threads() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


def leave_a_core(model: ModelSettings) -> ModelSettings:
    """Unless threads were set (--threads, models.toml), keep one core free for the UI.

    llama.cpp's compute threads meet at spin barriers: when the UI thread takes one of
    their cores, every pass waits for the descheduled thread. Measured here (2 cores,
    SmolLM2-135M drafting for itself, in the app): 2 threads 1.3-1.6 tok/s, 1 thread 15-22."""
    if model.n_threads is not None:
        return model
    return replace(model, n_threads=ui_threads())


def _with_a_core_left(request: ModelRequest) -> ModelRequest:
    draft = leave_a_core(request.draft) if request.draft is not None else None
    return replace(request, target=leave_a_core(request.target), draft=draft)


def _recent_item(item: list[object]) -> ModelFiles:
    target, draft, *rest = item
    draft_path = Path(str(draft)) if draft else None
    return ModelFiles(Path(str(target)), draft_path, bool(rest and rest[0]))


class CliLoader:
    """Loads what `specchat chat`'s model flags ask for, or a pair picked in the app."""

    # after each load, this many tokens of the target alone time its speed (the chat's
    # "speculation saved" line compares against it); 0 = not measured
    baseline_tokens = 12

    def __init__(self, request: PairRequest, recent_file: Path | None = None) -> None:
        self.request = request  # what the command line asked for
        self.generation = GenerationSettings()
        self.current: PairRef = None
        self._recent_file = recent_file
        # one prompt cache for the app's whole run: every pair loaded uses it
        self._prompt_cache: PromptCache | None = None
        self._cache_opened = False

    def initial_label(self) -> str:
        target, pair = self.request.target, self.request.pair
        if target:
            return f"model {target.name}"
        return f"pair {pair}" if pair else f"default pair {self._default_pair() or ''}".strip()

    def pairs(self) -> list[PairOption]:
        from specchat.config.registry import load_registry

        pairs = load_registry(self.request.config).pairs
        return [
            PairOption(
                name=name,
                description=pair.description,
                target=pair.target.label,
                draft=pair.draft.label if pair.draft is not None else None,
            )
            for name, pair in pairs.items()
        ]

    def load(self, pair: PairRef, cancel: threading.Event | None = None) -> ChatEngine:
        from specchat.pair_request import load_pair, resolve_model_request

        asked = self.request
        if isinstance(pair, ModelFiles):  # files opened in the app
            cross = pair.cross_vocab or bool(asked.cross_vocab)
            asked = replace(asked, pair=None, target=pair.target, draft=pair.draft,
                            no_draft=False, lookup=False, cross_vocab=cross)  # fmt: skip
        elif pair is not None:  # a pair picked in the app replaces the command line's models
            asked = replace(asked, pair=pair, target=None, draft=None, no_draft=False, lookup=False)
        # inside the app nothing may print, and Esc must stop a download
        request = resolve_model_request(asked, progress=False, cancel=cancel)
        self.generation = request.generation
        if cancel is not None and cancel.is_set():
            raise SpecchatError("loading was cancelled")
        engine = load_pair(_with_a_core_left(request), cancel, prompt_cache=self._cache())
        self.current = (
            pair
            if isinstance(pair, ModelFiles)
            else request.pair_name
            or ModelFiles(request.target.path, request.draft.path if request.draft else None)
        )
        if isinstance(pair, ModelFiles):
            self._remember(pair)
        return engine

    def _cache(self) -> PromptCache | None:
        """The prompt cache config.toml asks for (a bad [prompt_cache] table fails the load)."""
        if not self._cache_opened:
            from specchat.config.prompt_cache import open_prompt_cache

            self._prompt_cache = open_prompt_cache()
            self._cache_opened = True
        return self._prompt_cache

    def close(self) -> None:
        """When the app quits: the states still being written reach the disk."""
        if self._prompt_cache is not None:
            self._prompt_cache.close()

    def check(self, files: ModelFiles) -> PairReport:
        from specchat.pair_request import check_request

        cross = files.cross_vocab or bool(self.request.cross_vocab)
        return check_request(PairRequest(target=files.target, draft=files.draft, cross_vocab=cross))

    def recent(self) -> list[ModelFiles]:
        try:
            raw = json.loads(self._recent_path().read_text(encoding="utf-8"))
            return [_recent_item(item) for item in raw][:RECENT_MAX]
        except (OSError, ValueError, TypeError):
            return []  # no list yet, or an unreadable one: start a new one

    def _remember(self, files: ModelFiles) -> None:
        items = [files] + [f for f in self.recent() if f != files]
        raw = [
            [str(f.target), str(f.draft) if f.draft else None, f.cross_vocab]
            for f in items[:RECENT_MAX]
        ]
        path = self._recent_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(raw, indent=1), encoding="utf-8")
        except OSError:
            pass  # the recent list is a convenience; loading worked

    def _recent_path(self) -> Path:
        if self._recent_file is not None:
            return self._recent_file
        from specchat.config.paths import cache_dir

        return cache_dir() / "recent_models.json"

    def _default_pair(self) -> str | None:
        try:
            from specchat.config.registry import load_registry

            return load_registry(self.request.config).default_pair
        except SpecchatError:  # the welcome text must not fail on a bad config
            return None
