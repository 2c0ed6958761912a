"""A scripted ChatEngine for UI tests: tokens, origins and stats without a model.

Stats are computed from a virtual clock (pass_ms per target pass), so they are frozen and
identical on every run; only token_delay (real sleeping) makes a reply take real time."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from specchat.engine.types import (
    DoneEvent,
    DrafterKind,
    DraftMode,
    EngineInfo,
    Event,
    GenerationSettings,
    Message,
    ModelInfo,
    NoticeEvent,
    Origin,
    ProgressEvent,
    SpecSettings,
    Stats,
    TokenEvent,
)
from specchat.errors import SpecchatError
from specchat.pair_check import PairReport
from specchat.sources.cancel import check, report
from specchat.tui.loader import ModelFiles, PairOption, PairRef

Token = tuple[str, Origin]
# A draft token with the drafter that proposed it ("suffix" or "model"), as a chained engine
# reports it; in a plain Token, a draft's drafter is unknown ("").
KindToken = tuple[str, Origin, str]
AnyToken = Token | KindToken


def scripted(text: str, accepted_per_pass: int = 3) -> list[Token]:
    """Split text into word tokens; each pass = `accepted_per_pass` draft tokens + 1 target."""
    words = re.findall(r"\s*\S+|\s+", text)
    period = accepted_per_pass + 1
    return [
        (w, Origin.TARGET if i % period == accepted_per_pass else Origin.DRAFT)
        for i, w in enumerate(words)
    ]


def chained(text: str, rounds: Sequence[tuple[str, int]]) -> list[AnyToken]:
    """Split text into word tokens, in rounds taken in turn from `rounds`: (drafter, n) is n
    draft tokens from that drafter ("suffix" or "model"), then 1 target token."""
    words = re.findall(r"\s*\S+|\s+", text)
    tokens: list[AnyToken] = []
    turn = 0
    while len(tokens) < len(words):
        drafter, accepted = rounds[turn % len(rounds)]
        for word in words[len(tokens) : len(tokens) + accepted]:
            tokens.append((word, Origin.DRAFT, drafter))
        if len(tokens) < len(words):
            tokens.append((words[len(tokens)], Origin.TARGET))
        turn += 1
    return tokens


def drafter_of(token: AnyToken) -> DrafterKind | None:
    return DrafterKind(token[2]) if len(token) == 3 and token[2] else None


def thinking_reply(thinking: str, answer: str, opened_by_template: bool = False) -> str:
    """A reasoning model's reply: `<think>…</think>` then the answer (without the opening tag
    when the chat template opened it in the generation prompt)."""
    return f"{'' if opened_by_template else '<think>'}\n{thinking}\n</think>\n\n{answer}"


CODE_REPLY = (
    "Two ways:\n\n```python\nprint('hello')\n```\n\nor in the shell:\n\n"
    "```sh\necho hello\n```\n"
)


def model_info(name: str, layers: int = 30) -> ModelInfo:
    return ModelInfo(
        name=name,
        path=Path(f"/models/{name}.gguf"),
        architecture="llama",
        n_vocab=49152,
        n_params=135_000_000,
        size_bytes=98_000_000,
        n_ctx_train=8192,
        n_ctx=4096,
        n_layers=layers,
        n_gpu_layers=0,
        quantization="Q4_1",
    )


def fake_info(target: str = "SmolLM2-1.7B", draft: str = "SmolLM2-135M") -> EngineInfo:
    return EngineInfo(
        target=model_info(target, 24), draft=model_info(draft), backend="CPU", mode=DraftMode.MODEL
    )


@dataclass
class FakeEngine:
    """Replies come from `reply(messages)`; the default echoes the last user message."""

    reply: Callable[[Sequence[Message]], Sequence[AnyToken]] = field(
        default=lambda messages: scripted(f"You said: {messages[-1].content}")
    )
    token_delay: float = 0.0  # real seconds per token (slept once per target pass)
    pass_ms: float = 40.0  # virtual milliseconds per target pass (for the stats)
    prompt_ms: float = 120.0
    pause_after: int | None = None  # stop after this many tokens until resume or cancel
    # after every this many tokens, wait for `proceed` (a test steps through the reply)
    hold_every: int | None = None
    proceed: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    error: str | None = None  # raise SpecchatError(error) instead of replying
    notices: tuple[str, ...] = ()
    restored: tuple[int, float] = (0, 0.0)  # prompt tokens from the prompt cache, ms saved
    dropped_turns: int = 0
    info_: EngineInfo = field(default_factory=fake_info)
    spec_: SpecSettings = field(default_factory=lambda: SpecSettings(draft_max=4))
    resume: threading.Event = field(default_factory=threading.Event)
    paused: threading.Event = field(default_factory=threading.Event)
    calls: list[tuple[tuple[Message, ...], GenerationSettings, SpecSettings]] = field(
        default_factory=list
    )
    closed: bool = False
    continued: list[str] = field(default_factory=list)  # the partial text of each continue_
    durations: list[float] = field(default_factory=list)  # real seconds each chat() took
    threads: list[str] = field(default_factory=list)  # the thread of each call

    @property
    def info(self) -> EngineInfo:
        return self.info_

    @property
    def spec(self) -> SpecSettings:
        return self.spec_

    def set_spec(self, spec: SpecSettings) -> None:
        self.spec_ = spec

    def continue_(
        self,
        messages: Sequence[Message],
        partial: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """The scripted reply's tokens after those that make up `partial`."""
        self.continued.append(partial)
        script = self.reply(messages)
        shown, skip = "", 0
        while skip < len(script) and len(shown) < len(partial):
            shown += script[skip][0]
            skip += 1
        scripted_reply = self.reply
        self.reply = lambda _: script[skip:]
        try:
            yield from self.chat(messages, settings, cancel)
        finally:
            self.reply = scripted_reply

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Like the stats' prompt_tokens: a token per word, plus ten for the template."""
        self.threads.append(threading.current_thread().name)
        return sum(len(m.content.split()) for m in messages) + 10

    def close(self) -> None:
        self.threads.append(threading.current_thread().name)
        self.closed = True

    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        self.calls.append((tuple(messages), settings, self.spec_))
        self.threads.append(threading.current_thread().name)
        started = time.monotonic()
        if self.error:
            raise SpecchatError(self.error)
        script = self.reply(messages)
        tokens = script[: settings.max_tokens]
        stats = Stats(
            prompt_tokens=sum(len(m.content.split()) for m in messages) + 10,
            prompt_ms=self.prompt_ms,
            draft_max=self.spec_.draft_max,
            mode="model",
            restored_prompt_tokens=self.restored[0],
            restore_saved_ms=self.restored[1],
        )
        for notice in self.notices:
            yield NoticeEvent(notice, "warning")
        emitted: list[AnyToken] = []
        finish = "stop"
        for index, token in enumerate(tokens):
            text, origin = token[0], token[1]
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            if self.pause_after is not None and index == self.pause_after:
                self.paused.set()
                while not self.resume.wait(0.01):
                    if cancel is not None and cancel.is_set():
                        break
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
            if self.hold_every and index and index % self.hold_every == 0:
                while not self.proceed.acquire(timeout=0.01):
                    if cancel is not None and cancel.is_set():
                        break
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
            if self.token_delay and (index == 0 or tokens[index - 1][1] is Origin.TARGET):
                # like a real engine: one target pass computes the whole group at once
                time.sleep(self.token_delay * _pass_length(tokens, index))
            emitted.append(token)
            yield TokenEvent(text, 1000 + index, origin, drafter=drafter_of(token))
            if origin is Origin.TARGET or index == len(tokens) - 1:
                stats = self._update(stats, emitted)
                yield ProgressEvent(replace(stats))
        stats = self._update(stats, emitted)
        if finish == "stop" and len(script) > len(tokens):
            finish = "length"
        stats.finish_reason = finish
        text = "".join(t[0] for t in emitted)
        ids = tuple(1000 + i for i in range(len(emitted)))
        self.durations.append(time.monotonic() - started)
        yield DoneEvent(text, ids, stats, self.dropped_turns)

    def _update(self, stats: Stats, emitted: list[AnyToken]) -> Stats:
        passes = sum(1 for t in emitted if t[1] is Origin.TARGET) or (1 if emitted else 0)
        accepted = sum(1 for t in emitted if t[1] is Origin.DRAFT)
        drafted = passes * self.spec_.draft_max
        n = len(emitted)
        gen_ms = passes * self.pass_ms
        stats.generated_tokens = n
        stats.generation_ms = gen_ms
        stats.tokens_per_second = n / (gen_ms / 1000) if gen_ms else 0.0
        stats.ttft_ms = self.prompt_ms + self.pass_ms if n else 0.0
        stats.drafted = drafted
        stats.accepted = accepted
        stats.acceptance_rate = accepted / drafted if drafted else 0.0
        stats.target_passes = passes
        stats.tokens_per_pass = n / passes if passes else 0.0
        if any(drafter_of(t) for t in emitted):
            self._update_kinds(stats, emitted, passes)
        return stats

    def _update_kinds(self, stats: Stats, emitted: list[AnyToken], passes: int) -> None:
        """Per-drafter figures: each pass drafted draft_max tokens from the drafter of its
        accepted drafts (a pass that kept none: the draft model's)."""
        kinds = [_round_kind(r) for r in _rounds(emitted)[:passes]]
        for kind in ("suffix", "model"):
            drafted = kinds.count(kind) * self.spec_.draft_max
            accepted = sum(1 for t in emitted if drafter_of(t) == kind)
            setattr(stats, f"{kind}_drafted", drafted)
            setattr(stats, f"{kind}_accepted", accepted)


def _rounds(emitted: list[AnyToken]) -> list[list[AnyToken]]:
    """The tokens of each target pass: drafts up to and including a target token."""
    rounds: list[list[AnyToken]] = [[]]
    for token in emitted:
        rounds[-1].append(token)
        if token[1] is Origin.TARGET:
            rounds.append([])
    return [r for r in rounds if r]


def _round_kind(tokens: list[AnyToken]) -> str:
    return next((drafter_of(t) for t in tokens if drafter_of(t)), "model")


def _pass_length(tokens: Sequence[AnyToken], start: int) -> int:
    """Tokens from start up to and including the next target token."""
    for offset, token in enumerate(tokens[start:], 1):
        if token[1] is Origin.TARGET:
            return offset
    return len(tokens) - start


@dataclass
class FakeLoader:
    """engines maps a pair name or files (None = the command line's models) to an engine or an
    error. download: (file name, size) reported in steps while a load waits at gate, like a
    download between chunks (a cancel stops it with the sources layer's DownloadCancelled)."""

    engines: dict[PairRef, FakeEngine | Exception] = field(
        default_factory=lambda: {None: FakeEngine()}
    )
    default_pair: str | None = "smollm2"  # what None resolves to (None: command-line files)
    download: tuple[str, int] | None = None
    reports: dict[ModelFiles, PairReport | Exception] = field(default_factory=dict)
    recent_files: list[ModelFiles] = field(default_factory=list)
    current: PairRef = None
    baseline_tokens: int = 0  # >0: the app times the target alone after each load
    options: list[PairOption] = field(default_factory=list)
    label: str = "pair smollm2"
    gate: threading.Event | None = None  # loading waits for it (to see the loading state)
    waiting: threading.Event = field(default_factory=threading.Event)  # a load waits at gate
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    loaded: list[PairRef] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)

    def initial_label(self) -> str:
        return self.label

    def pairs(self) -> list[PairOption]:
        return self.options

    def recent(self) -> list[ModelFiles]:
        return self.recent_files

    def check(self, files: ModelFiles) -> PairReport:
        found = self.reports.get(files, PairReport("(files)", ["pair (files)", "  vocab  same"]))
        if isinstance(found, Exception):
            raise found
        return found

    def load(self, pair: PairRef, cancel: threading.Event | None = None) -> FakeEngine:
        if self.gate is not None:
            self.waiting.set()
            self._wait_at_gate(cancel)
        self.loaded.append(pair)
        self.threads.append(threading.current_thread().name)
        engine = self.engines[pair]
        if isinstance(engine, Exception):
            raise engine
        self.current = pair if pair is not None else self.default_pair
        if isinstance(pair, ModelFiles):
            self.recent_files.insert(0, pair)
        return engine

    def _wait_at_gate(self, cancel: threading.Event | None) -> None:
        assert self.gate is not None
        name, size = self.download or ("", 0)
        done, step = 0, max(1, size // 4)
        deadline = time.monotonic() + 10
        while not self.gate.wait(0.01) and time.monotonic() < deadline:
            if self.download is not None:
                check(cancel, name)  # like a download between chunks
                if done < size * 3 // 4:  # three steps, then it waits (a stalled connection)
                    done += step
                report(name, done, size)
            elif cancel is not None and cancel.is_set():
                raise SpecchatError("download cancelled")
        if self.download is not None:
            report(name, size, size)
