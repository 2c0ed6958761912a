"""kill -9 of a real app process while a reply streams: nothing shown is lost, the reply is
kept marked incomplete, and another instance running meanwhile leaves it alone."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from specchat.store import MessageStatus
from specchat.tui.widgets import MessageBox

from .conftest import ready

CHILD = Path(__file__).with_name("crash_child.py")
FREEZE_AT = 5  # batches shown before the child's UI stops (and the test kills it)


async def wait_frozen(proc: subprocess.Popen[bytes], marker: Path) -> None:
    for _ in range(12_000):  # up to two minutes on a loaded machine
        if marker.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the app process ended: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
    raise AssertionError("the app process never showed its batches")


def stored_reply(db_path: Path) -> tuple[str, str]:
    """The last message as SQLite itself reads the file (WAL included), without specchat."""
    conn = sqlite3.connect(db_path)
    try:
        row = conn.execute("SELECT content, status FROM messages ORDER BY id DESC LIMIT 1")
        return row.fetchone()
    finally:
        conn.close()


@pytest.mark.slow  # an app in a child process, killed mid-reply
async def test_kill_9_mid_reply_loses_no_shown_word(make_app, db_path, tmp_path) -> None:
    report = tmp_path / "shown.txt"
    marker = Path(f"{report}.frozen")
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(db_path), str(report), str(FREEZE_AT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_frozen(proc, marker)
        # a second instance opens the history while the first one streams
        async with make_app().run_test() as pilot:
            screen = await ready(pilot)
            assert screen.app.store.recovered == 0  # type: ignore[attr-defined]
            assert screen.query(MessageBox).last().status is MessageStatus.STREAMING
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Path(f"{db_path}-wal").stat().st_size > 0  # the WAL as the crash left it
    shown = report.read_text()
    content, status = stored_reply(db_path)
    assert len(shown.split()) >= FREEZE_AT and status == "streaming"
    assert content.startswith(shown), (shown[-80:], content[-80:])  # every shown word saved
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        box = screen.query(MessageBox).last()
        assert box.text == content and box.status is MessageStatus.INCOMPLETE
        assert "incomplete" in str(box.query_one(".message-header").render())
        assert app.store.recovered == 1
