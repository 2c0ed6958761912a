"""The real app in a real terminal (tmux): a long chat, a reply, quit, reopen, send. The reply
after reopening restores the chat's saved model state from the prompt cache's files instead of
re-reading the whole chat; the three times to first token are printed (speed is measured,
not asserted: see docs/prompt-cache.md for the figures)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from specchat.store import ChatStore, MessageStatus

from .test_real_terminal_replies import Tmux

pytestmark = [
    pytest.mark.real,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("SPECCHAT_REQUIRE_TMUX"),
        reason="needs tmux (CI installs it and sets SPECCHAT_REQUIRE_TMUX)",
    ),
]

ROWS = [f"sensor {i}: {i * 7 % 13} C, {i * 5 % 11} m/s" for i in range(150)]


def seed_long_chat(data: Path) -> None:
    """A chat of several pasted logs and answers (~1,800 tokens)."""
    store = ChatStore(data / "history.sqlite3")
    chat = store.create_chat("Sensor logs", "smol")
    for part in range(5):
        rows = "\n".join(ROWS[part * 30 : (part + 1) * 30])
        store.add_message(chat.id, "user", f"Log part {part + 1}:\n{rows}\nAny above 10 C?")
        reply = store.begin_reply(chat.id)
        store.finish_reply(reply.id, f"Yes, part {part + 1} has some.", MessageStatus.COMPLETE)
    store.close()


def last_reply(data: Path) -> tuple[int, str, dict[str, object]]:
    with sqlite3.connect(data / "history.sqlite3") as conn:
        row = conn.execute(
            "SELECT id, status, stats FROM messages WHERE role = 'assistant' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return int(row[0]), str(row[1]), json.loads(row[2]) if row[2] else {}


def test_long_chat_quit_reopen_send_restores_from_disk(real_models, tmp_path) -> None:
    data, cache = tmp_path / "data", tmp_path / "prompt-cache"
    seed_long_chat(data)
    model = real_models["smollm2"]
    config = tmp_path / "models.toml"
    config.write_text(
        f'default = "smol"\n[pairs.smol]\ndraft_max = 4\n[pairs.smol.target]\npath = \'{model}\'\n'
        f"[pairs.smol.draft]\npath = '{model}'\n",
        encoding="utf-8",
    )
    specchat = Path(sys.executable).parent / "specchat"
    command = (
        f"unset COLUMNS LINES; SPECCHAT_DATA_DIR={data} SPECCHAT_PROMPT_CACHE_DIR={cache}"
        f" SPECCHAT_KEYS_FILE={tmp_path / 'keys.toml'} TERM=xterm-256color {specchat}"
        f" --config {config} chat --temperature 0 --max-tokens 8 --n-ctx 4096"
    )
    tmux = Tmux(f"specchat-cache-{os.getpid()}", data)
    replies: list[dict[str, object]] = []

    def open_app() -> None:
        tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "t", command)
        tmux.wait(lambda s: "Message the model" in s and "pair smol" in s, 120)
        tmux.wait(lambda s: "Sensor logs" in s, 10)

    def send(text: str) -> None:
        before = last_reply(data)[0]
        tmux("send-keys", "-t", "t", "-l", text)
        tmux.wait(lambda s: text in s, 10)
        tmux("send-keys", "-t", "t", "Enter")

        def finished(_screen: str) -> bool:
            message_id, status, stats = last_reply(data)
            return message_id > before and status == "complete" and bool(stats)

        tmux.wait(finished, 600)
        replies.append(last_reply(data)[2])

    try:
        open_app()
        send("Which part is warmest?")  # cold: the whole chat is read, then its state saved
        send("And coldest?")  # warm: the live cache holds the chat
        tmux("send-keys", "-t", "t", "C-q")
        tmux.wait(lambda s: "t" not in tmux("list-sessions", "-F", "#{session_name}").split(),
                  60)
        assert list(cache.glob("*.seq")), "quitting left no saved state"
        open_app()
        send("And windiest?")  # reopened: the state comes from disk
    finally:
        tmux("kill-server")
    cold, warm, reopened = replies
    print(f"TTFT cold {cold['ttft_ms']:.0f} ms, warm {warm['ttft_ms']:.0f} ms, "
          f"reopened {reopened['ttft_ms']:.0f} ms")
    assert cold["restored_prompt_tokens"] == 0
    assert isinstance(cold["prompt_tokens"], int)
    assert reopened["restored_prompt_tokens"] >= cold["prompt_tokens"]
