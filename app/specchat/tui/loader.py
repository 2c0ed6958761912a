"""Glue between the chat app and the model registry / model flags, kept in one place.

Everything here runs on the engine thread except pairs() and initial_label()."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from specchat.engine.protocol import ChatEngine
from specchat.engine.types import GenerationSettings, ModelSettings


@dataclass(frozen=True)
class PairOption:
    name: str
    description: str = ""
    target: str = ""
    draft: str | None = None


class EngineLoader(Protocol):
    generation: GenerationSettings  # defaults for chats; valid after a load

    def initial_label(self) -> str:
        """What loads at start ("pair smollm2", "model.gguf")."""
        ...

    def pairs(self) -> list[PairOption]:
        """The registry's pairs. Raises SpecchatError on a bad config."""
        ...

    def load(self, pair: str | None) -> ChatEngine:
        """Load a pair by name, or (None) what the command line asked for. Engine thread."""
        ...


def ui_threads() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


def leave_a_core(model: ModelSettings | None) -> ModelSettings | None:
    """Unless threads were set (--threads, models.toml), keep one core free for the UI.

    llama.cpp's compute threads meet at spin barriers: when the UI thread takes one of
    their cores, every pass waits for the descheduled thread. Measured here (2 cores,
    SmolLM2-135M drafting for itself, in the app): 2 threads 1.3-1.6 tok/s, 1 thread 15-22."""
    if model is None or model.n_threads is not None:
        return model
    return replace(model, n_threads=ui_threads())


class CliLoader:
    """Loads what `specchat chat`'s model flags ask for, or a pair picked in the app."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.generation = GenerationSettings()

    def initial_label(self) -> str:
        target = getattr(self.args, "target", None)
        pair = getattr(self.args, "pair", None)
        if target:
            return f"model {Path(target).name}"
        return f"pair {pair}" if pair else f"default pair {self._default_pair() or ''}".strip()

    def pairs(self) -> list[PairOption]:
        from specchat.config.registry import load_registry

        pairs = load_registry(getattr(self.args, "config", None)).pairs
        items = pairs.items() if isinstance(pairs, dict) else ((p.name, p) for p in pairs)
        return [
            PairOption(
                name=name,
                description=pair.description,
                target=pair.target.label,
                draft=pair.draft.label if pair.draft is not None else None,
            )
            for name, pair in items
        ]

    def load(self, pair: str | None) -> ChatEngine:
        from specchat.commands.model_args import resolve_model_request
        from specchat.engine import load_engine

        ns = argparse.Namespace(**vars(self.args))
        if pair is not None:  # a pair picked in the app replaces the command line's models
            ns.pair, ns.target, ns.draft = pair, None, None
            ns.no_draft = ns.lookup = False
        request = resolve_model_request(ns)
        self.generation = request.generation
        target, draft = leave_a_core(request.target), leave_a_core(request.draft)
        return load_engine(target, draft, request.spec, request.chat_template)

    def _default_pair(self) -> str | None:
        try:
            from specchat.config.registry import load_registry

            registry = load_registry(getattr(self.args, "config", None))
        except Exception:  # the welcome text must not fail on a bad config
            return None
        return getattr(registry, "default_pair", None) or getattr(registry, "default", None)
