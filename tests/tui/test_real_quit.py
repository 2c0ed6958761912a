"""Quitting the app while a real model decodes: the pass ends, then its thread frees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.cli import build_parser
from specchat.commands.model_args import pair_request
from specchat.store import ChatStore, MessageStatus
from specchat.tui import SpecchatApp
from specchat.tui.loader import CliLoader
from specchat.tui.widgets import MessageBox

from .conftest import ready, send, wait_for

pytestmark = pytest.mark.real


async def test_quit_mid_reply_with_a_real_pair(
    real_models: dict[str, Path], tmp_path: Path
) -> None:
    model = str(real_models["smollm2"])
    args = build_parser().parse_args(
        ["chat", "--target", model, "--draft", model, "--max-tokens", "2000", "--n-ctx", "4096"]
    )
    path = tmp_path / "history.sqlite3"
    app = SpecchatApp(ChatStore(path), CliLoader(pair_request(args)), export_dir=tmp_path)
    async with app.run_test() as pilot:
        screen = await ready(pilot, timeout=120)
        assert screen.engine_state == "ready", screen.engine_error
        await send(pilot, "Write a very long story about a lighthouse keeper.", wait=False)
        await wait_for(pilot, lambda: len(screen.query(MessageBox).last().text) > 20, 120)
        worker = screen.worker
        await pilot.press("ctrl+q")
    assert worker is not None and not worker._thread.is_alive()  # the pass ended in time
    assert worker.engine is None  # closed (by its own thread, after the pass)
    store = ChatStore(path)
    last = store.messages(store.list_chats()[0].id)[-1]
    assert last.status is MessageStatus.CANCELLED and last.content.strip()
    store.close()
