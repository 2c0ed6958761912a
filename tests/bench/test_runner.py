"""The benchmark runner's bookkeeping, against a fake engine (no models)."""

from __future__ import annotations

from specchat.bench.runner import _engine_runner
from specchat.engine.types import (
    DoneEvent,
    DrafterKind,
    GenerationSettings,
    Origin,
    SpecSettings,
    Stats,
    TokenEvent,
)


class _FakeEngine:
    """Just enough engine for the runner: each set_spec makes a new drafter chain."""

    def __init__(self) -> None:
        self.chain: object = None
        self.kept: list[bool] = []

    def set_spec(self, spec, *, keep_measurements: bool = True) -> None:
        self.kept.append(keep_measurements)
        self.chain = object()

    def reset_cache(self) -> None:
        pass

    def generate(self, prompt, settings):
        yield TokenEvent("a", 1, Origin.TARGET)
        yield DoneEvent("a", (1,), Stats())


def test_each_mode_keeps_its_own_drafters_across_runs():
    """The adaptive mode must not start from what the fixed modes measured: each mode starts
    fresh and then carries its own drafters (and what they learned) from run to run, like one
    chat session."""
    engine = _FakeEngine()
    gen = GenerationSettings(max_tokens=4)
    run_a = _engine_runner(engine, SpecSettings(), gen, "a")
    run_b = _engine_runner(engine, SpecSettings(), gen, "b")
    run_a([1, 2], 4, "p", 0)
    first_a = engine.chain
    run_b([1, 2], 4, "p", 0)
    first_b = engine.chain
    run_a([1, 2], 4, "p", 1)
    assert engine.chain is first_a
    run_b([1, 2], 4, "p", 1)
    assert engine.chain is first_b
    assert engine.kept == [False] * 4


class _ChatEngine(_FakeEngine):
    """Answers each turn with the number of user messages so far, and records the prompts."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[str]] = []

    def chat(self, messages, settings):
        self.seen.append([m.content for m in messages])
        turn = sum(1 for m in messages if m.role == "user")
        stats = Stats(generated_tokens=1, drafted=2, accepted=1, suffix_drafted=2,
                      suffix_accepted=1, target_passes=1)
        yield TokenEvent(str(turn), turn, Origin.DRAFT, drafter=DrafterKind.SUFFIX)
        yield DoneEvent(str(turn), (turn,), stats)


def test_a_multi_turn_chat_is_run_turn_by_turn():
    from specchat.bench.prompts import builtin_set
    from specchat.bench.results import ModeSpecInfo
    from specchat.bench.runner import BenchRun, drafter_notes

    (chat,) = builtin_set("edit-chat")
    engine = _ChatEngine()
    controllers: dict[str, object] = {}
    fn = _engine_runner(engine, SpecSettings(), GenerationSettings(), "chain",
                        {chat.name: chat}, controllers)
    record = fn([1, 2], 4, chat.name, 0)
    assert record.token_ids == (1, 2, 3)  # one reply per turn
    assert [len(s) for s in engine.seen] == [1, 3, 5]  # each turn carries the ones before
    assert engine.seen[1][1] == "1" and engine.seen[2][3] == "2"  # the replies, as assistant
    assert engine.seen[2][4] == chat.followups[1]
    assert record.stats["suffix_drafted"] == 6 and record.stats["turns"] == 3
    assert controllers["chain"] is engine.chain
    run = BenchRun([ModeSpecInfo("chain", "chain")], [record])
    (note,) = drafter_notes(run, {})
    assert "suffix 3/6 (50%)" in note
    warm = fn([1, 2], 4, chat.name, -1)  # warm-up: the first turn only, from its tokens
    assert warm.prompt == chat.name and len(engine.seen) == 3
