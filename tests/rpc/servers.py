"""llama.cpp's rpc-server for tests: built once by packaging/rpc-server.sh (cached under specchat's
cache), started on free loopback ports, spoken to with the protocol's HELLO."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "packaging" / "rpc-server.sh"
BUILD_TIMEOUT_S = 1800  # a first build on 2 busy cores
START_TIMEOUT_S = 60.0
RPC_CMD_HELLO = 14
HELLO_CAPS_SIZE = 24  # rpc_msg_hello_req: conn_caps[24], all zero = plain TCP


def script_env() -> dict[str, str]:
    """The environment for the script: this interpreter finds llama-cpp-python's version."""
    return {**os.environ, "PYTHON": sys.executable}


def build_rpc_server() -> Path:
    """The rpc-server program, built by the script on first use (minutes), else found at once."""
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--build-only"],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"packaging/rpc-server.sh --build-only failed:\n{proc.stderr[-3000:]}")
    binary = Path(proc.stdout.strip().splitlines()[-1])
    assert binary.is_file() and os.access(binary, os.X_OK), proc.stdout
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc_hello(endpoint: str, timeout: float = 10.0) -> tuple[int, int, int]:
    """Send the RPC protocol's HELLO and return the server's (major, minor, patch) version."""
    host, port = endpoint.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(struct.pack("<BQ", RPC_CMD_HELLO, HELLO_CAPS_SIZE) + bytes(HELLO_CAPS_SIZE))
        (size,) = struct.unpack("<Q", recv_exact(sock, 8))
        reply = recv_exact(sock, size)
    major, minor, patch = reply[0], reply[1], reply[2]
    return major, minor, patch


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"the server closed the connection after {len(data)} bytes")
        data += chunk
    return data


@dataclass
class RpcServer:
    """A running rpc-server: `endpoint` is "127.0.0.1:PORT"; kill() is a real SIGKILL."""

    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path
    _closed: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crashed or unplugged helper machine: no goodbye on the socket."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_rpc_server(binary: Path, log_dir: Path, threads: int = 1) -> RpcServer:
    """Start the server on a free loopback port and wait until it accepts connections."""
    output = ""
    for _attempt in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        log = log_dir / f"rpc-server-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(binary), "-H", "127.0.0.1", "-p", str(port), "-t", str(threads)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = RpcServer(f"127.0.0.1:{port}", process, log)
        if wait_listening(server):
            return server
        server.stop()
        output = server.output()
    pytest.fail(f"rpc-server did not start; its output:\n{output[-2000:]}")


def wait_listening(server: RpcServer) -> bool:
    """True once the port accepts a connection; False if the server exited first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1.0).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def require_rpc_build() -> None:
    """Fail (skip with SPECCHAT_ALLOW_NO_RPC=1) unless llama-cpp-python has the RPC backend: the
    README's commands and CI build it with -DGGML_RPC=ON, so the RPC tests must run there."""
    from specchat.engine.llama.rpc import rpc_available

    if rpc_available():
        return
    if os.environ.get("SPECCHAT_ALLOW_NO_RPC") == "1":
        pytest.skip("this llama-cpp-python build has no RPC backend (SPECCHAT_ALLOW_NO_RPC=1)")
    pytest.fail(
        "this llama-cpp-python build has no RPC backend: reinstall it with "
        'CMAKE_ARGS="-DGGML_RPC=ON" pip install --no-cache-dir --force-reinstall --no-deps '
        "llama-cpp-python (the README's commands and packaging/install.sh do), or set "
        "SPECCHAT_ALLOW_NO_RPC=1"
    )
