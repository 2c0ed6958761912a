"""Snapshots of the model views: download progress, a pending message, the open-GGUF check,
the context meter with its warning and the speculation line (pytest-textual-snapshot).

Update after an intended UI change: pytest tests/tui/test_snapshots_models.py --snapshot-update"""

from __future__ import annotations

import threading
from pathlib import Path

from textual.pilot import Pilot

from specchat.pair_check import PairReport
from specchat.tui.loader import ModelFiles
from specchat.tui.screens.open_model import OpenModelScreen
from specchat.tui.widgets.context_meter import ContextMeter
from specchat.tui.worker import BASELINE_PROMPT, DownloadProgress

from .conftest import main_screen, ready, send, wait_for
from .fake_engine import FakeEngine, FakeLoader, scripted
from .test_models_in_app import small_context_engine, words

SIZE = (110, 34)


async def steady(pilot: Pilot) -> None:
    """No blinking cursor, no loading animation (they would be caught at random)."""
    screen = main_screen(pilot.app)  # type: ignore[arg-type]
    screen.query_one("#prompt").cursor_blink = False  # type: ignore[attr-defined]
    await screen.query("#status-loading").remove()
    pilot.app.clear_notifications()
    await pilot.pause()
    # the meter's warning takes rows from the chat: let its scroll settle at the end
    screen.query_one("#chat-view").scroll_end(animate=False, immediate=True)
    await pilot.pause()


def test_download_progress(snap_compare, make_app) -> None:
    loader = FakeLoader(gate=threading.Event(), label="pair demo")

    async def before(pilot: Pilot) -> None:
        await wait_for(pilot, loader.waiting.is_set)
        screen = main_screen(pilot.app)  # type: ignore[arg-type]
        for name, done, total, rate, eta in (
            ("qwen2.5-coder-7b-q4_k_m.gguf", 2_100_000_000, 4_680_000_000, 31_500_000, 81.9),
            ("qwen2.5-coder-0.5b-q8_0.gguf", 531_000_000, 531_000_000, 40_000_000, 0.0),
        ):
            screen.post_message(DownloadProgress("pair demo", name, done, total, rate, eta))
        await pilot.pause()
        await send(pilot, "Write a haiku about speculative decoding", wait=False)
        await steady(pilot)

    assert snap_compare(make_app(loader=loader), terminal_size=SIZE, run_before=before)
    loader.gate.set()  # type: ignore[union-attr]


def test_open_gguf_check(snap_compare, make_app) -> None:
    files = ModelFiles(Path("/models/big-Q4_K_M.gguf"), Path("/models/small-Q8_0.gguf"))
    report = PairReport(
        "(files)",
        [
            "pair (files)",
            "  target big-Q4_K_M.gguf\n         llama, Q4_K_M, 1.7B params, context 8192"
            " (using 8192), 24 layers, vocab 49152, 1055.0 MB",
            "  draft  small-Q8_0.gguf\n         llama, Q8_0, 135M params, context 8192"
            " (using 8192), 30 layers, vocab 49152, 145.0 MB",
            "  vocab  same vocabulary: token-level drafting",
            "  memory needs ~1.95 GB; 12.0 GB of 16.0 GB RAM available; no GPU offload (CPU build)",
        ],
    )
    loader = FakeLoader(recent_files=[files])

    async def before(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OpenModelScreen))
        dialog = pilot.app.screen
        dialog._show_report(files, report)  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(make_app(loader=loader), terminal_size=(110, 40), run_before=before)


def test_context_meter_warning(snap_compare, make_app) -> None:
    engine = small_context_engine(120)  # a chat that fits on screen: no scrollbar to settle

    async def before(pilot: Pilot) -> None:
        screen = await ready(pilot)
        meter = screen.query_one(ContextMeter)
        await send(pilot, "first question " + words(16))
        await send(pilot, "second " + words(20))
        await wait_for(pilot, lambda: meter.forecast is not None and meter.forecast.dropped)
        await steady(pilot)

    assert snap_compare(make_app(engine), terminal_size=(110, 40), run_before=before)


def test_speculation_line(snap_compare, make_app) -> None:
    def reply(messages):
        if messages[-1].content == BASELINE_PROMPT:
            return scripted(words(12), accepted_per_pass=0)
        return scripted("Drafts are checked in one pass. " * 6, accepted_per_pass=3)

    loader = FakeLoader(engines={None: FakeEngine(reply=reply)}, baseline_tokens=12)

    async def before(pilot: Pilot) -> None:
        screen = await ready(pilot)
        await send(pilot, "Why is this faster?")
        line = screen.query_one("#speed-line")
        await wait_for(pilot, lambda: "saved" in str(line.render()))
        await steady(pilot)

    assert snap_compare(make_app(loader=loader), terminal_size=SIZE, run_before=before)
