"""The delaying TCP relay (specchat.bench.relay) forwards bytes intact, in order, both ways, and
holds each message back; how long it holds them is measured in the RPC latency run, not here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from specchat.bench.relay import DelayRelay, RelayError, parse_endpoint

GREETING = b"hello from the server\n"


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def echo_server() -> Iterator[str]:
    """A server that greets first, then returns what it receives in chunks of 4096 bytes, each
    reversed (so that the reply depends on the order), until the client closes. Payloads are
    whole chunks."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.sendall(GREETING)
            while chunk := recv_exact(conn, 4096):
                conn.sendall(chunk[::-1])

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def exchange(endpoint: str, payload: bytes) -> tuple[bytes, bytes]:
    host, port = parse_endpoint(endpoint)
    with socket.create_connection((host, port), timeout=30) as sock:
        greeting = recv_exact(sock, len(GREETING))
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        reply = recv_exact(sock, len(payload))
        sender.join()
    return greeting, reply


def reversed_chunks(payload: bytes) -> bytes:
    return b"".join(payload[i:i + 4096][::-1] for i in range(0, len(payload), 4096))


@pytest.mark.parametrize("delay_ms", [0.0, 2.0])
def test_bytes_arrive_intact_in_order_both_ways(echo_server: str, delay_ms: float) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 4096 * 3)  # many reads each way
    with DelayRelay(echo_server, delay_ms) as relay:
        greeting, reply = exchange(relay.endpoint, payload)
        stats = relay.stats
    assert greeting == GREETING  # server -> client, before the client said anything
    assert reply == reversed_chunks(payload)  # client -> server -> client, order kept
    assert stats.to_server_bytes == len(payload)
    assert stats.to_client_bytes == len(GREETING) + len(payload)
    assert stats.to_server_messages > 1 and stats.to_client_messages > 1


def test_several_connections_at_once(echo_server: str) -> None:
    payloads = [os.urandom(25 * 4096) for _ in range(4)]
    results: dict[int, tuple[bytes, bytes]] = {}
    with DelayRelay(echo_server, 1.0) as relay:
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, exchange(relay.endpoint, payloads[i]))) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert [results[i] for i in range(4)] == [(GREETING, reversed_chunks(p)) for p in payloads]


def test_messages_are_held_back_for_the_delay(echo_server: str) -> None:
    """With a one-minute delay nothing comes through at once; with none, the greeting does."""
    with DelayRelay(echo_server, 60_000) as relay:
        host, port = parse_endpoint(relay.endpoint)
        with socket.create_connection((host, port), timeout=0.5) as sock, pytest.raises(
            TimeoutError
        ):
            sock.recv(1)
        assert relay.stats.to_client_bytes == len(GREETING)  # it arrived at the relay
    with DelayRelay(echo_server, 0) as relay:
        host, port = parse_endpoint(relay.endpoint)
        with socket.create_connection((host, port), timeout=30) as sock:
            assert recv_exact(sock, len(GREETING)) == GREETING


def test_a_closed_server_closes_the_client(echo_server: str) -> None:
    unused = socket.create_server(("127.0.0.1", 0))
    dead = f"127.0.0.1:{unused.getsockname()[1]}"
    unused.close()
    with DelayRelay(dead, 0) as relay:
        host, port = parse_endpoint(relay.endpoint)
        with socket.create_connection((host, port), timeout=30) as sock:
            assert sock.recv(1) == b""


@pytest.mark.parametrize("text", ["nohost", "host:", ":80", "h:99999", "h:x"])
def test_bad_endpoints_are_one_line_errors(text: str) -> None:
    with pytest.raises(RelayError, match="is not HOST:PORT"):
        parse_endpoint(text)


def test_cli_bad_arguments_exit_2_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "specchat.bench.relay", "--listen", "127.0.0.1:0",
         "--to", "nowhere", "--delay-ms", "1"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: 'nowhere' is not HOST:PORT"
