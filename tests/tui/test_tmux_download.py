"""The real app in a real terminal (tmux): first start of a pair downloads it from the local
fake Hugging Face hub, the progress bar shows bytes, rate and time left; Esc cancels and keeps
the partial file; the next start resumes it (a Range request) and says why the file fails to
load, on screen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sources.fake_hub import FakeHub
from sources.helpers import sha, tiny_gguf
from specchat.sources.cancel import CANCEL_CHUNK

TMUX = shutil.which("tmux")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        TMUX is None and not os.environ.get("SPECCHAT_REQUIRE_TMUX"),
        reason="needs tmux (CI installs it and sets SPECCHAT_REQUIRE_TMUX)",
    ),
]
REPO_ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    """One tmux session, 120x40, running a command, on its own tmux server.

    A private server (-L, no user config) per terminal: the default server exits when its last
    session is killed, and a new session asked of it while it exits fails ("server exited
    unexpectedly"), which once broke this test in CI."""

    def __init__(self, name: str, command: str, env: dict[str, str]) -> None:
        self.name = name
        self.base = [str(TMUX), "-L", name, "-f", os.devnull]
        exports = " ".join(f"{k}={_quote(v)}" for k, v in env.items())
        subprocess.run(
            [*self.base, "new-session", "-d", "-x", "120", "-y", "40", "-s", name,
             f"env {exports} {command}; sleep 30"],
            check=True,
        )  # fmt: skip

    def screen(self) -> str:
        out = subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        )
        return out.stdout

    def wait_for(self, check: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if check(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"screen never matched; last screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", self.name, *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    fake = FakeHub().start()
    yield fake
    fake.release.set()
    fake.stop()


def app_env(tmp_path: Path, hub: FakeHub) -> dict[str, str]:
    return {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "SPECCHAT_CACHE_DIR": str(tmp_path / "cache"),
        "SPECCHAT_DATA_DIR": str(tmp_path / "data"),
        "SPECCHAT_KEYS_FILE": str(tmp_path / "no-keys.toml"),
        "PYTHONPATH": str(REPO_ROOT / "app"),
        "TERM": "xterm-256color",
    }


def test_first_start_download_progress_cancel_and_resume(tmp_path: Path, hub: FakeHub) -> None:
    big = tiny_gguf(tmp_path / "big.gguf", n=6_000_000)
    hub.repos["org/big-GGUF"] = {"big-Q4_K_M.gguf": big}
    hub.pause_after = 2 * CANCEL_CHUNK + CANCEL_CHUNK // 2  # then the 'network' stalls
    config = tmp_path / "models.toml"
    config.write_text(
        'default = "hubpair"\n[pairs.hubpair.target]\nrepo = "org/big-GGUF"\n'
        f'file = "big-Q4_K_M.gguf"\nsha256 = "{sha(big)}"\n'
    )
    command = f"{_quote(sys.executable)} -m specchat --config {_quote(str(config))} chat"
    name = f"specchat-h9-{os.getpid()}"
    term = Terminal(name, command, app_env(tmp_path, hub))
    try:
        # the bytes before the stall: whole 1 MiB chunks
        shown = term.wait_for(lambda s: "2.1 / 6.0 MB" in s, timeout=30)
        assert "Downloading default pair hubpair" in shown
        line = next(row for row in shown.splitlines() if "2.1 / 6.0 MB" in row)
        assert "big-Q4_K_M.gguf" in shown, shown
        assert "MB/s · 0:0" in line  # rate and time left (the end of the line may be cut)
        term.wait_for(lambda s: "stalled 0:0" in s, timeout=20)  # no bytes for 5 s: said so
        term.keys("Escape")
        term.wait_for(lambda s: "(cancelling)" in s)  # the app has seen the key
        hub.release.set()  # the next chunk arrives: the download sees the cancel
        shown = term.wait_for(lambda s: "Download cancelled" in s)
        assert "what was fetched is kept" in shown
        partials = list((tmp_path / "hf").rglob("*.specchat-partial"))
        assert len(partials) == 1 and 0 < partials[0].stat().st_size < len(big)
        kept = partials[0].stat().st_size
    finally:
        term.close()
    term = Terminal(name + "b", command, app_env(tmp_path, hub))
    try:  # the next start resumes from the kept bytes; the tiny file then fails to load
        shown = term.wait_for(lambda s: "could not be loaded" in s or "failed to load" in s)
    finally:
        term.close()
    assert [g.range for g in hub.gets("big-Q4_K_M.gguf")] == [None, f"bytes={kept}-"]
