"""The fixtures themselves: a started server answers the RPC hello; kill() is a real SIGKILL after
which nothing answers on that port; several servers run side by side on their own ports."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from rpc.servers import RpcServer, rpc_hello

pytestmark = pytest.mark.slow


def test_rpc_server_answers_hello(rpc_server: str) -> None:
    host, port = rpc_server.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert rpc_hello(rpc_server)[0] >= 1


def test_kill_is_sigkill_and_the_port_goes_dead(start_rpc_server: Callable[..., RpcServer]) -> None:
    first, second = start_rpc_server(), start_rpc_server(threads=1)
    assert first.endpoint != second.endpoint
    assert rpc_hello(first.endpoint)[0] == rpc_hello(second.endpoint)[0]
    first.kill()
    assert first.process.returncode == -9  # SIGKILL, not a clean exit
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", first.port), timeout=5).close()
    assert second.alive() and rpc_hello(second.endpoint)[0] >= 1
