"""Fixtures for engine tests: tiny generated models and helpers to run the engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    Event,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)

from .tiny_gguf import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_target(tiny_dir: Path) -> Path:
    return write_tiny_llama(tiny_dir / "target.gguf", seed=0)


@pytest.fixture(scope="session")
def tiny_draft(tiny_dir: Path) -> Path:
    """Agrees with tiny_target often but not always: every round exercises rollback."""
    return write_tiny_llama(tiny_dir / "draft.gguf", seed=7, perturb_from=0, perturb=0.02)


@pytest.fixture(scope="session")
def tiny_heavy_draft(tiny_dir: Path) -> Path:
    """Same vocabulary as tiny_target but ~50x its cost per token: a draft that cannot pay."""
    return write_tiny_llama(tiny_dir / "heavy-draft.gguf", seed=0, n_embd=256, n_layer=4,
                            n_ff=1024)


@pytest.fixture(scope="session")
def tiny_other_vocab(tiny_dir: Path) -> Path:
    return write_tiny_llama(tiny_dir / "other.gguf", seed=3, extra_words=["zebra", "quux"])


def settings(path: Path, n_ctx: int = 512) -> ModelSettings:
    return ModelSettings(path=path, n_ctx=n_ctx, n_threads=1)


def load(
    target: Path, draft: Path | None = None, n_ctx: int = 512, **spec: object
) -> SpeculativeEngine:
    mode = spec.pop("mode", DraftMode.MODEL if draft else DraftMode.NONE)
    return SpeculativeEngine.load(
        settings(target, n_ctx),
        settings(draft, n_ctx) if draft else None,
        SpecSettings(mode=mode, **spec),  # type: ignore[arg-type]
    )


def run(events: Iterator[Event]) -> tuple[DoneEvent, list[Event]]:
    seen = list(events)
    done = seen[-1]
    assert isinstance(done, DoneEvent)
    return done, seen


def chat(engine: SpeculativeEngine, text: str, **gen: object) -> DoneEvent:
    g = GenerationSettings(**{"max_tokens": 60, **gen})  # type: ignore[arg-type]
    return run(engine.chat([Message("user", text)], g))[0]


class RecordingDrafter:
    """Wraps a drafter and records each proposal with the output position it starts at."""

    def __init__(self, inner, prompt_len: int) -> None:
        self.inner = inner
        self.prompt_len = prompt_len
        self.proposals: list[tuple[int, list[int]]] = []
        self.typical_acceptance = inner.typical_acceptance

    def propose(self, context, n, settings, rng):
        draft = self.inner.propose(context, n, settings, rng)
        self.proposals.append((len(context) - self.prompt_len, list(draft.tokens)))
        return draft

    def reset(self) -> None:
        self.inner.reset()

    def lag(self, context) -> int:
        return self.inner.lag(context)

    def prepare(self, prompt) -> None:
        self.inner.prepare(prompt)

    def begin(self, prompt, messages) -> None:
        self.inner.begin(prompt, messages)


def replace_gen(g: GenerationSettings, **changes: object) -> GenerationSettings:
    return dataclasses.replace(g, **changes)  # type: ignore[arg-type]


def pretend_drafting_is_cheap(engine, verify_too: bool = False) -> None:
    """Start the engine's cost model believing a drafted token costs next to nothing (and, with
    verify_too, that a batched pass costs one token), so that the adaptive path drafts on a
    machine where the measured costs would switch it off; real samples replace these as the
    replies run."""
    from specchat.engine.speculative.costs import Samples

    engine.costs.draft = Samples([1e-4])
    if verify_too:
        engine.costs.ratio = {n: Samples([1.0]) for n in range(2, 7)}
