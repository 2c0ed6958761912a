"""Smoke test of the chat app on a real model pair through the real engine and CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.cli import build_parser
from specchat.commands.model_args import pair_request
from specchat.store import ChatStore, MessageStatus
from specchat.tui import SpecchatApp
from specchat.tui.loader import CliLoader
from specchat.tui.widgets import MessageBox

from .conftest import ready, send

pytestmark = pytest.mark.real


async def test_chat_with_real_pair(real_models: dict[str, Path], tmp_path: Path) -> None:
    model = str(real_models["smollm2"])  # SmolLM2 as target, drafting for itself
    # A fixed draft length: a self-draft costs as much as its target, so the adaptive
    # controller would (rightly) never draft, and this test checks the drafting stats.
    args = build_parser().parse_args(
        ["chat", "--target", model, "--draft", model, "--max-tokens", "24", "--n-ctx", "1024",
         "--no-adaptive"]
    )
    store = ChatStore(tmp_path / "history.sqlite3")
    app = SpecchatApp(store, CliLoader(pair_request(args)), export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot, timeout=120)
        assert screen.engine_state == "ready", screen.engine_error
        assert screen.info is not None and screen.info.draft is not None
        await send(pilot, "What is the capital of France?", timeout=120)
        report = screen.last_report
        assert report is not None and report.status is MessageStatus.COMPLETE and report.tokens > 0
        box = screen.query(MessageBox).last()
        assert box.text.strip()
        stats = box.stats
        assert stats is not None and stats["generated_tokens"] == report.tokens
        assert stats["drafted"] > 0 and stats["target_passes"] > 0
        # the same model drafting for itself: the target accepts (almost) every draft token
        assert stats["acceptance_rate"] > 0.9
        live = str(screen.query_one("#status-live").render())
        assert f"({stats['accepted']}/{stats['drafted']})" in live
        assert [o for _, o in box.segments if o not in ("model", "suffix", "target")] == []
