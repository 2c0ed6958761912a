"""The benchmark runner's bookkeeping, against a fake engine (no models)."""

from __future__ import annotations

from specchat.bench.runner import _engine_runner
from specchat.engine.types import (
    DoneEvent,
    GenerationSettings,
    Origin,
    SpecSettings,
    Stats,
    TokenEvent,
)


class _FakeEngine:
    """Just enough engine for the runner: each set_spec makes a new controller object."""

    def __init__(self) -> None:
        self.controller: object = None
        self.kept: list[bool] = []

    def set_spec(self, spec, *, keep_measurements: bool = True) -> None:
        self.kept.append(keep_measurements)
        self.controller = object()

    def reset_cache(self) -> None:
        pass

    def generate(self, prompt, settings):
        yield TokenEvent("a", 1, Origin.TARGET)
        yield DoneEvent("a", (1,), Stats())


def test_each_mode_keeps_its_own_controller_across_runs():
    """The adaptive mode must not start from what the fixed modes measured: each mode starts
    fresh and then carries its own controller from run to run, like one chat session."""
    engine = _FakeEngine()
    gen = GenerationSettings(max_tokens=4)
    run_a = _engine_runner(engine, SpecSettings(), gen, "a")
    run_b = _engine_runner(engine, SpecSettings(), gen, "b")
    run_a([1, 2], 4, "p", 0)
    first_a = engine.controller
    run_b([1, 2], 4, "p", 0)
    first_b = engine.controller
    run_a([1, 2], 4, "p", 1)
    assert engine.controller is first_a
    run_b([1, 2], 4, "p", 1)
    assert engine.controller is first_b
    assert engine.kept == [False] * 4
