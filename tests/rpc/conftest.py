"""Fixtures for tests that put a target on llama.cpp's rpc-server over loopback.

- `rpc_server_binary` (session): the program, built once by packaging/rpc-server.sh and cached under
  specchat's cache (`SPECCHAT_CACHE_DIR`/rpc-server), so only the first run of all pays the build.
- `rpc_server`: "127.0.0.1:PORT" of a server running for one test (-t 1), stopped after it.
- `start_rpc_server`: a factory, `start_rpc_server(threads=1)` -> RpcServer with `.endpoint`,
  `.kill()` (a real SIGKILL) and `.alive()`, for tests that kill a server or need several.
Every server a test starts is stopped when the test ends, whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rpc.servers import RpcServer, build_rpc_server
from rpc.servers import start_rpc_server as start_server


@pytest.fixture(scope="session")
def rpc_server_binary() -> Path:
    return build_rpc_server()


@pytest.fixture
def start_rpc_server(
    rpc_server_binary: Path, tmp_path: Path
) -> Iterator[Callable[..., RpcServer]]:
    started: list[RpcServer] = []

    def start(threads: int = 1) -> RpcServer:
        server = start_server(rpc_server_binary, tmp_path, threads=threads)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def rpc_server(start_rpc_server: Callable[..., RpcServer]) -> str:
    return start_rpc_server().endpoint
