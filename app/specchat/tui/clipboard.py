"""Copying text: the system clipboard tool when one is present, and OSC 52 to the terminal.

A clipboard tool's exit status confirms the copy; OSC 52 cannot be confirmed (the terminal may
ignore it), so the message says where the text was sent, never "copied" when it was not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from textual.app import App

TOOL_TIMEOUT = 2.0

# (command, what it needs to reach a clipboard: an environment variable, "macOS" or "")
TOOLS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("wl-copy",), "WAYLAND_DISPLAY"),
    (("xclip", "-selection", "clipboard"), "DISPLAY"),
    (("xsel", "--clipboard", "--input"), "DISPLAY"),
    (("pbcopy",), "macOS"),
    (("clip.exe",), ""),  # WSL and Windows
)

Runner = Callable[[tuple[str, ...], str], bool]


@dataclass(frozen=True)
class CopyResult:
    ok: bool  # something received the text (a tool confirmed it, or OSC 52 was sent)
    message: str


def available_tools(env: Mapping[str, str] | None = None) -> list[tuple[str, ...]]:
    env = os.environ if env is None else env
    return [
        command
        for command, needs in TOOLS
        if _reachable(needs, env) and shutil.which(command[0]) is not None
    ]


def _reachable(needs: str, env: Mapping[str, str]) -> bool:
    if needs == "macOS":
        return sys.platform == "darwin"
    return not needs or bool(env.get(needs))


def run_tool(command: tuple[str, ...], text: str) -> bool:
    try:
        done = subprocess.run(
            command,
            input=text.encode("utf-8"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=TOOL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def copy_text(
    app: App[object],
    text: str,
    what: str = "Text",
    tools: list[tuple[str, ...]] | None = None,
    runner: Runner | None = None,
) -> CopyResult:
    """Copy with the first clipboard tool that works, and send OSC 52 to the terminal too."""
    tools = available_tools() if tools is None else tools
    runner = runner or run_tool
    app.copy_to_clipboard(text)  # OSC 52 (the app also keeps it for its own paste)
    osc52 = not app.is_headless  # a headless app has no terminal to send it to
    for command in tools:
        if runner(command, text):
            return CopyResult(True, f"{what} copied to the clipboard ({command[0]})")
    if osc52:
        return CopyResult(
            True,
            f"{what} sent to the terminal clipboard (OSC 52); no clipboard tool was found"
            " to confirm it (wl-copy, xclip, xsel, pbcopy, clip.exe)",
        )
    return CopyResult(
        False,
        "Nothing was copied: no clipboard tool worked (wl-copy, xclip, xsel, pbcopy, clip.exe)"
        " and this terminal cannot take OSC 52",
    )


def notify_copy(app: App[object], text: str, what: str = "Text") -> CopyResult:
    result = copy_text(app, text, what)
    app.notify(result.message, severity="information" if result.ok else "error", timeout=4)
    return result
