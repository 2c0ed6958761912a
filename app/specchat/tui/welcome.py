"""The first-run / empty-chat text."""

from __future__ import annotations

from specchat.engine.types import EngineInfo
from specchat.tui.format import backend_line


def welcome_markdown(label: str, state: str, info: EngineInfo | None, error: str = "") -> str:
    if state == "ready" and info is not None:
        status = f"**ready** · {backend_line(info)}"
    elif state == "failed":
        status = f"**could not be loaded**: {error}  \nPress **F4** to choose another pair."
    else:
        status = "**loading…** (you can type while it loads)"
    return f"""\
# Welcome to specchat

A small *draft* model guesses the next tokens and the large *target* model checks them all in
one pass: the answer is exactly the target's, only sooner. The status bar shows, live, the
speed and how many draft tokens the target accepted.

**Models:** {label} — {status}

- Type below and press **Enter** to send; **Shift+Enter** or **Ctrl+J** for a new line.
- **Esc** stops a reply · **Ctrl+R** regenerates · **Ctrl+G** edits your last prompt.
- **Ctrl+O** colours each token by origin (copied from the conversation, drafted, or the
  target's own).
- **F4** picks another model pair · **Ctrl+P** lists every command.

No models yet? `specchat models --help` shows how to list and download the pairs in
`models.toml`, or start with your own files:
`specchat chat --target big.gguf --draft small.gguf`.
"""
