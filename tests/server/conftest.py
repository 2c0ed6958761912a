"""A real `specchat serve` process on 127.0.0.1 (a free port, chosen by the server itself),
driven by real clients: the official `openai` package and httpx."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

READY = re.compile(r"serving .* at (http://\S+)/v1")
START_TIMEOUT_S = 180  # loading on a busy 2-core machine


class ServerProcess:
    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = log.open("w")
        code = "import sys; from specchat.cli import main; sys.exit(main())"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--port", "0", *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.url = self._wait_ready()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def text(self) -> str:
        return self.log.read_text()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = READY.search(self.text())
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                pytest.fail(f"specchat serve exited {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.1)
        self.proc.kill()
        pytest.fail(f"specchat serve did not start:\n{self.text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"specchat serve did not stop on signal {sig}:\n{self.text()}")
        self._out.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """serve(args, env=None) -> a started ServerProcess; all are stopped at the module's end."""
    started: list[ServerProcess] = []

    def start(args: Sequence[str], env: dict[str, str] | None = None) -> ServerProcess:
        log = tmp_path_factory.mktemp("serve") / "server.log"
        server = ServerProcess([str(a) for a in args], log, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
