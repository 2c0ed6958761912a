"""RPC without a server: endpoint parsing, models.toml and flag validation, the exposure warning,
the layer split, and the Python-side server check against small fake servers."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from specchat import cli
from specchat.config import load_registry, paths
from specchat.engine.llama import rpc, rpc_runner
from specchat.errors import (
    ConfigError,
    RpcConnectionError,
    RpcEndpointError,
    RpcUnavailableError,
)
from specchat.pair_request import PairRequest, resolve_model_request

# ---- endpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:50052", ("127.0.0.1", 50052)),
        (" gpu-box.local:1 ", ("gpu-box.local", 1)),
        ("10.0.0.2:65535", ("10.0.0.2", 65535)),
    ],
)
def test_good_endpoints_parse(text: str, expected: tuple[str, int]) -> None:
    ep = rpc.parse_endpoint(text)
    assert (ep.host, ep.port) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("127.0.0.1", "not HOST:PORT"),
        (":50052", "not HOST:PORT"),
        ("host:", "not HOST:PORT"),
        ("host:port", "port must be a number"),
        ("host:0", "port must be a number"),
        ("host:70000", "port must be a number"),
        ("[::1]:50052", "IPv6"),
        ("fe80::1:50052", "IPv6"),
        ("a b:1", "not a host name"),
        ("http://h:1", "not a host name"),
    ],
)
def test_bad_endpoints_say_why_in_one_line(text: str, says: str) -> None:
    with pytest.raises(RpcEndpointError) as info:
        rpc.parse_endpoint(text)
    assert says in info.value.message and "\n" not in info.value.message


def test_endpoint_lists() -> None:
    assert rpc.parse_endpoints("a:1, b:2") == ("a:1", "b:2")
    assert rpc.parse_endpoints(["a:1"]) == ("a:1",)
    with pytest.raises(RpcEndpointError, match="twice"):
        rpc.parse_endpoints("a:1,a:1")
    with pytest.raises(RpcEndpointError, match="not HOST:PORT"):
        rpc.parse_endpoints("a:1,")
    with pytest.raises(RpcEndpointError, match="string"):
        rpc.parse_endpoints([5])  # type: ignore[list-item]


def test_warning_only_for_servers_off_loopback_and_private_networks() -> None:
    private = {"127.0.0.1:1": ["127.0.0.1"], "10.1.2.3:1": ["10.1.2.3"],
               "192.168.1.5:1": ["192.168.1.5"], "172.16.0.9:1": ["172.16.0.9"]}
    assert rpc.exposure_warning(private) is None
    warning = rpc.exposure_warning({**private, "8.8.8.8:50052": ["8.8.8.8"]})
    assert warning is not None and "8.8.8.8:50052" in warning
    assert "no authentication" in warning and "10.1.2.3" not in warning


# ---- where llama.cpp puts the layers ---------------------------------------------------------


def test_layer_split_mirrors_llama_cpp() -> None:
    # all layers (and the output) on one device
    assert rpc.layer_split(30, -1, [5.0]) == [31]
    assert rpc.layer_split(30, 99, [5.0]) == [31]
    # the last N layers are offloaded (the output counts as one)
    assert rpc.layer_split(30, 10, [5.0]) == [10]
    assert rpc.layer_split(30, 0, [5.0]) == [0]
    # split by free memory, in device order; every offloaded layer lands somewhere
    assert rpc.layer_split(30, -1, [1.0, 1.0]) == [16, 15]
    assert rpc.layer_split(30, -1, [3.0, 1.0]) == [24, 7]
    assert sum(rpc.layer_split(7, 5, [2.0, 7.0, 1.0])) == 5


def test_remote_description_names_servers_and_counts() -> None:
    devs = [
        rpc.RpcDevice("10.0.0.2:1", "RPC0", 1, 0, 0),
        rpc.RpcDevice("10.0.0.3:1", "RPC1", 2, 0, 0),
    ]
    text = rpc.describe_remote(devs, [16, 15], 30)
    assert text == "31 of 31 layers (output included) on RPC 10.0.0.2:1 (16), 10.0.0.3:1 (15)"
    assert rpc.describe_remote(devs[:1], [10], 30) == (
        "10 of 31 layers (output included) on RPC 10.0.0.2:1"
    )


# ---- the server check, against fake servers --------------------------------------------------


def _serve_once(handler: Callable[[socket.socket], None]) -> Iterator[str]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                handler(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


def _answer(major: int, size: int = rpc.HELLO_ANSWER_SIZE) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        conn.recv(64)
        conn.sendall(struct.pack("<Q", size) + bytes([major, 0, 0, 0]) + bytes(size - 4))
        conn.recv(64)

    return handler


@pytest.fixture
def fake_server(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _serve_once(request.param)


def _silent(conn: socket.socket) -> None:
    conn.recv(64)
    threading.Event().wait(3)


def _closes(conn: socket.socket) -> None:
    conn.recv(64)


@pytest.mark.parametrize(
    ("fake_server", "says"),
    [
        (_answer(6), "speaks RPC protocol 6.0.0"),
        (_answer(7, 7), "another format (7 bytes)"),
        (_silent, "did not answer within 1 s"),
        (_closes, "closed the connection during the RPC handshake"),
    ],
    indirect=["fake_server"],
)
def test_server_check_explains_each_failure(fake_server: str, says: str) -> None:
    with pytest.raises(RpcConnectionError) as info:
        rpc.check_server(fake_server, answer_timeout=1.0)
    assert says in info.value.message and "\n" not in info.value.message


@pytest.mark.parametrize("fake_server", [_answer(7)], indirect=True)
def test_server_check_accepts_the_protocol_of_this_build(fake_server: str) -> None:
    assert rpc.check_server(fake_server) == ["127.0.0.1"]


def test_server_check_refused_and_unresolvable() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RpcConnectionError, match=r"connection refused.*rpc-server\.sh"):
        rpc.check_server(f"127.0.0.1:{port}")
    with pytest.raises(RpcConnectionError, match="cannot resolve host"):
        rpc.check_server("no-such-host.invalid:50052")


def test_a_build_without_rpc_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc, "rpc_registry", lambda: None)
    with pytest.raises(RpcUnavailableError, match='CMAKE_ARGS="-DGGML_RPC=ON"'):
        rpc.register_servers(("127.0.0.1:1",), rpc_runner.RpcRunner(("127.0.0.1:1",)))


# ---- the runner ------------------------------------------------------------------------------


def test_runner_returns_results_and_errors_from_its_thread() -> None:
    runner = rpc_runner.RpcRunner(("127.0.0.1:1",))
    assert runner.call(lambda a, b: a + b, 2, 3) == 5
    assert runner.call(threading.current_thread).name == "specchat-rpc"
    with pytest.raises(ZeroDivisionError):
        runner.call(lambda: 1 / 0)
    assert runner.broken is None  # an ordinary error is the caller's, not a lost server


def test_runner_gives_up_on_a_call_that_never_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc_runner._FATAL, "dead", set())
    runner = rpc_runner.RpcRunner(("127.0.0.1:1",))
    with pytest.raises(RpcConnectionError, match=r"did not answer within 0\.2 s; this model"):
        runner.call(threading.Event().wait, timeout=0.2)
    with pytest.raises(RpcConnectionError):  # and refuses everything after
        runner.call(int)
    with pytest.raises(RpcConnectionError, match="failed earlier in this session"):
        rpc_runner.RpcRunner(("127.0.0.1:1",)).call(int)


# ---- flags and models.toml -------------------------------------------------------------------


@pytest.fixture
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(paths, "config_dir", lambda: tmp_path / "userconf")
    monkeypatch.delenv("SPECCHAT_CONFIG", raising=False)


def test_rpc_flag_goes_to_the_target_only_with_every_layer(tmp_path: Path) -> None:
    choice = PairRequest(target=tmp_path / "t.gguf", draft=tmp_path / "d.gguf", rpc="h:1,g:2")
    request = resolve_model_request(choice)
    assert request.target.rpc_servers == ("h:1", "g:2")
    assert request.target.n_gpu_layers == -1
    assert request.draft is not None and request.draft.rpc_servers == ()
    assert request.draft.n_gpu_layers == 0
    layers = resolve_model_request(PairRequest(target=tmp_path / "t.gguf", rpc="h:1",
                                              n_gpu_layers="12"))
    assert layers.target.n_gpu_layers == 12  # the user's count is kept


def test_bad_rpc_flag_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = cli.main(["ask", "--target", str(tmp_path / "t.gguf"), "--rpc", "nope", "hi"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "specchat: error: RPC server 'nope' is not HOST:PORT (e.g. 192.168.1.20:50052)"
    )


def _pair_with(tmp_path: Path, rpc_line: str) -> Path:
    cfg = tmp_path / "models.toml"
    cfg.write_text(
        f'[pairs.far]\n{rpc_line}\n[pairs.far.target]\npath = "t.gguf"\n'
        '[pairs.far.draft]\npath = "d.gguf"\n'
    )
    return cfg


def test_models_toml_rpc_is_validated(no_user_config: None, tmp_path: Path) -> None:
    good = load_registry(_pair_with(tmp_path, 'rpc = ["10.0.0.2:50052", "10.0.0.3:50052"]'))
    assert good.get("far").rpc == ("10.0.0.2:50052", "10.0.0.3:50052")
    for line, says in [
        ('rpc = ["10.0.0.2"]', "'10.0.0.2' is not HOST:PORT"),
        ("rpc = 5", 'list of "HOST:PORT" strings'),
        ('rpc = ["h:1", "h:1"]', "given twice"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_registry(_pair_with(tmp_path, line))
        assert "pair 'far': field 'rpc':" in info.value.message and says in info.value.message


def test_models_toml_rpc_reaches_the_target(no_user_config: None, tmp_path: Path) -> None:
    config = _pair_with(tmp_path, 'rpc = ["10.0.0.2:50052"]')
    for name in ("t.gguf", "d.gguf"):  # resolving only checks that they are files
        (tmp_path / name).write_bytes(b"")
    request = resolve_model_request(PairRequest(pair="far", config=str(config)))
    target, draft = request.target, request.draft
    assert target.rpc_servers == ("10.0.0.2:50052",) and target.n_gpu_layers == -1
    assert draft is not None and draft.rpc_servers == () and draft.n_gpu_layers == 0


def test_runner_gives_up_a_stuck_call_some_time_after_a_cancel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rpc_runner._FATAL, "dead", set())
    monkeypatch.setattr(rpc_runner, "GIVE_UP_GRACE_S", 0.2)
    runner = rpc_runner.RpcRunner(("127.0.0.1:2",))
    cancel = threading.Event()
    assert runner.call(int, "7", give_up=cancel.is_set) == 7  # no cancel: no effect
    cancel.set()
    assert runner.call(int, "8", give_up=cancel.is_set) == 8  # a pass that ends is kept
    with pytest.raises(RpcConnectionError, match="did not finish a pass"):
        runner.call(threading.Event().wait, give_up=cancel.is_set)
    assert runner.broken is not None


def test_runner_notices_a_server_gone_during_a_pass_that_never_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as s:  # a port nothing listens on: the host "left the network"
        s.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(rpc_runner._FATAL, "dead", set())
    monkeypatch.setattr(rpc_runner, "PROBE_AFTER_S", 0.1)
    runner = rpc_runner.RpcRunner((endpoint,))
    with pytest.raises(RpcConnectionError, match=f"{endpoint} is no longer reachable"):
        runner.call(threading.Event().wait)
