"""The real app in a real terminal (tmux): copying a code block reaches the terminal clipboard
through OSC 52 (tmux keeps it in its paste buffer with set-clipboard on), and a real model's
reasoning reply shows its thinking folded.

None of the real test models thinks natively: the pair's chat template override opens <think>
in the generation prompt after a one-shot example, and SmolLM2 (greedy) then writes
"…</think>answer" — a reply that starts inside its thinking, as with Qwen3-style templates."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from specchat.store import ChatStore, MessageStatus

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("SPECCHAT_REQUIRE_TMUX"),
        reason="needs tmux (CI installs it and sets SPECCHAT_REQUIRE_TMUX)",
    ),
]

TEMPLATE = """<|im_start|>system
Think first inside <think></think>, then answer.<|im_end|>
<|im_start|>user
What is 2+2?<|im_end|>
<|im_start|>assistant
<think>2 plus 2 makes 4.</think>2 + 2 = 4.<|im_end|>
{% for message in messages %}<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
<think>{% endif %}"""

CODE = "print('hello from specchat')"


class Tmux:
    def __init__(self, socket: str, data: Path) -> None:
        self.base = ["tmux", "-L", socket, "-f", os.devnull]
        self.data = data  # the app's history folder

    def last_reply(self) -> str:
        with sqlite3.connect(self.data / "history.sqlite3") as conn:
            row = conn.execute(
                "SELECT content FROM messages WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return str(row[0])

    def __call__(self, *args: str) -> str:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, check=False)
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t")

    def wait(self, seen: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if seen(text):
                return text
            time.sleep(0.5)
        raise AssertionError(f"timed out; the screen shows:\n{self.screen()}")


def config(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "think.toml"
    path.write_text(
        'default = "smol-think"\n[pairs.smol-think]\ndraft_max = 4\n'
        f'chat_template = """{TEMPLATE}"""\n'
        f"[pairs.smol-think.target]\npath = '{model}'\n"
        f"[pairs.smol-think.draft]\npath = '{model}'\n",
        encoding="utf-8",
    )
    return path


def seed_code_chat(data: Path) -> None:
    store = ChatStore(data / "history.sqlite3")
    chat = store.create_chat("Code to copy", "smol-think")
    store.add_message(chat.id, "user", "Hello world in Python and in the shell?")
    reply = store.begin_reply(chat.id)
    text = f"Two ways:\n\n```python\n{CODE}\n```\n\nor in the shell:\n\n```sh\necho hi\n```\n"
    store.finish_reply(reply.id, text, MessageStatus.COMPLETE, {"generated_tokens": 20})
    store.close()


@pytest.fixture
def start(real_models: dict[str, Path], tmp_path: Path):
    """Starts the app in tmux (greedy, at most max_tokens per reply); returns the terminal."""
    data = tmp_path / "data"
    seed_code_chat(data)
    tmux = Tmux(f"specchat-test-{os.getpid()}", data)
    specchat = Path(sys.executable).parent / "specchat"

    def run(max_tokens: int) -> Tmux:
        command = (
            # COLUMNS/LINES (pytest may export them) would override the pane's size
            f"unset COLUMNS LINES; SPECCHAT_DATA_DIR={data}"
            f" SPECCHAT_KEYS_FILE={tmp_path / 'keys.toml'}"
            f" TERM=xterm-256color {specchat} --config {config(tmp_path, real_models['smollm2'])}"
            f" chat --temperature 0 --max-tokens {max_tokens} --n-ctx 1024"
        )
        tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "t", command)
        tmux("set", "-g", "set-clipboard", "on")
        terminal.wait(lambda s: "Message the model" in s and "pair smol-think" in s, 120)
        return tmux

    terminal = tmux
    try:
        yield run
    finally:
        tmux("kill-server")


def ask(terminal: Tmux, text: str) -> None:
    terminal("send-keys", "-t", "t", "C-n")
    terminal.wait(lambda s: "Type below" in s, 10)  # a new chat, the prompt focused
    terminal("send-keys", "-t", "t", "-l", text)
    terminal.wait(lambda s: f"│ {text}" in s, 10)
    terminal("send-keys", "-t", "t", "Enter")


def test_code_block_copy_and_thinking_fold_in_tmux(start) -> None:
    terminal = start(60)
    terminal.wait(lambda s: "print('hello from specchat')" in s, 10)
    terminal("send-keys", "-t", "t", "BTab")  # from the prompt back to the last message
    terminal.wait(lambda s: "y Copy code" in s, 10)
    terminal("send-keys", "-t", "t", "1")
    shown = terminal.wait(lambda s: "OSC 52" in s, 10)
    assert "Code block 1 sent to the" in shown and "copied" not in shown  # never "copied"
    assert terminal("show-buffer") == CODE  # tmux received exactly the block

    ask(terminal, "What is 3+3?")
    screen = terminal.wait(lambda s: "Thought (" in s and "tok/s ·" in s, 180)
    assert "▶ Thought (" in screen  # folded
    assert "3 + 3 = 6" in screen  # the answer, below it
    assert "makes 6" not in screen  # the thinking itself stays folded away


def test_continue_regenerate_and_flip_keys_in_tmux(start) -> None:
    terminal = start(12)
    ask(terminal, "Tell me a story")
    terminal.wait(lambda s: "ctrl+l continues" in s and "tok/s ·" in s, 120)
    first = terminal.last_reply()
    terminal("send-keys", "-t", "t", "C-l")  # continue: the same reply grows
    terminal.wait(lambda s: len(terminal.last_reply()) > len(first) and "streaming" not in s, 120)
    continued = terminal.last_reply()
    assert continued.startswith(first)
    terminal("send-keys", "-t", "t", "C-r")  # regenerate: the continued reply is kept
    terminal.wait(lambda s: "‹ 2/2 ›" in s and "streaming" not in s, 120)
    terminal("send-keys", "-t", "t", "M-Left")  # alt+left, as the terminal sends it
    terminal.wait(lambda s: "‹ 1/2 ›" in s, 10)
    assert terminal.last_reply() == continued  # the continued reply is shown (and kept) again
