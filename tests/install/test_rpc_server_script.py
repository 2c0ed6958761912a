"""packaging/rpc-server.sh, the one command a helper machine runs: argument errors are one line
and exit 2; --build-only builds llama.cpp's rpc-server once (cached) and prints its path; the
server it starts answers the RPC protocol's HELLO. And the llama-cpp-python specchat runs was built
with RPC support (the README's install and test commands ask for it)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from rpc.servers import (
    SCRIPT,
    build_rpc_server,
    free_port,
    require_rpc_build,
    rpc_hello,
    script_env,
)


def run_script(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env=script_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--host is required"),
        (("--host", "127.0.0.1"), "--port is required"),
        (("--host", "127.0.0.1", "--port", "http"), "--port must be a number"),
        (("--host", "127.0.0.1", "--port", "70000"), "--port must be a number"),
        (("--host", "127.0.0.1", "--port", "50052", "--threads", "0"), "--threads must be"),
        (("--host",), "--host needs a value"),
        (("--listen", "x"), "unknown option '--listen'"),
        (("--build-only", "--backend", "rocm"), "unknown --backend 'rocm'"),
        (("--build-only", "--sdist", "/no/such/sdist.tar.gz"), "no such file or folder"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: tuple[str, ...], message: str) -> None:
    proc = run_script(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rpc-server.sh: "), proc.stderr
    assert message in lines[0]


@pytest.mark.slow
def test_build_only_builds_once_and_prints_the_cached_path() -> None:
    binary = build_rpc_server()  # minutes the first time on this machine, then cached
    cache = Path(os.environ.get("SPECCHAT_CACHE_DIR", Path.home() / ".cache" / "specchat"))
    assert binary.name == "rpc-server"
    assert binary.parent.parent == cache / "rpc-server"
    assert binary.parent.name.endswith(("-cpu", "-cuda", "-metal", "-vulkan"))
    again = run_script("--build-only")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(binary)
    assert "building" not in again.stderr  # the second run found the cached program


@pytest.mark.slow
def test_the_started_server_answers_hello() -> None:
    build_rpc_server()
    port = free_port()
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
        env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        version = hello_when_up(f"127.0.0.1:{port}", proc)
        assert version[0] >= 1  # the protocol's major version: a real llama.cpp RPC reply
        assert proc.poll() is None
    finally:
        proc.kill()  # the script execs the server: this is the server's pid
        _, err = proc.communicate(timeout=30)
    assert "WARNING" not in err  # loopback: no exposure warning
    assert f"on 127.0.0.1:{port}" in err


def hello_when_up(endpoint: str, proc: subprocess.Popen[str]) -> tuple[int, int, int]:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the server exited ({proc.returncode}): {proc.communicate()[1]}")
        try:
            return rpc_hello(endpoint)
        except (ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
def test_a_public_address_is_warned_about_and_a_failed_bind_is_an_error() -> None:
    build_rpc_server()
    proc = run_script("--host", "192.0.2.1", "--port", str(free_port()))  # TEST-NET: not ours
    assert proc.returncode == 1
    assert "no authentication" in proc.stderr
    assert "cannot listen on 192.0.2.1:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_installed_llama_cpp_has_rpc() -> None:
    """The README's commands build llama-cpp-python with -DGGML_RPC=ON: the RPC backend is in it."""
    require_rpc_build()


def test_the_readme_test_command_builds_rpc_and_ci_runs_it_verbatim() -> None:
    root = SCRIPT.parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split("**Run the tests**", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    assert 'CMAKE_ARGS="-DGGML_RPC=ON"' in block
    assert "--no-cache-dir" in block  # pip's wheel cache ignores CMAKE_ARGS
    assert block in (root / ".ci" / "run").read_text().splitlines()
