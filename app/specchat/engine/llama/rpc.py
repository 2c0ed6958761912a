"""llama.cpp's RPC backend: a target's layers on `rpc-server` machines, the draft kept local.

llama-cpp-python has no RPC option, so servers are registered through ggml's backend registry
(ctypes, like devices.py and threads.py) and their devices are handed to the target's model
parameters only; they are never registered globally, so the draft never sees them.

ggml-rpc ends the whole process (GGML_ABORT) when a server cannot be reached, fails the
handshake, or vanishes mid-pass. Hence every endpoint is checked from Python first (TCP connect
and the RPC hello, with timeouts), which turns the usual mistakes into one clear line, and every
llama.cpp call that may talk to a server runs on the model's RpcRunner (rpc_runner.py), which
survives a server lost mid-pass.
"""

from __future__ import annotations

import bisect
import ctypes
import ipaddress
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specchat.engine.llama.devices import Device, ggml_library
from specchat.engine.llama.devices import devices as local_devices
from specchat.engine.llama.rpc_runner import (
    QUERY_TIMEOUT_S,
    REBUILD_HINT,
    RpcRunner,
    install_abort_guard,
)
from specchat.errors import (
    RpcConnectionError,
    RpcEndpointError,
    RpcUnavailableError,
)

# The RPC protocol of the vendored llama.cpp (ggml-rpc.h, llama-cpp-python 0.3.36): its hello
# is command 14 with 24 bytes of transport capabilities; the answer is major, minor, patch, one
# padding byte and 24 bytes of capabilities.
RPC_PROTO_MAJOR = 7
RPC_CMD_HELLO = 14
CONN_CAPS_SIZE = 24
HELLO_ANSWER_SIZE = 4 + CONN_CAPS_SIZE
CONNECT_TIMEOUT_S = 3.0
ANSWER_TIMEOUT_S = 5.0
SERVER_HINT = "start it there with: bash packaging/rpc-server.sh --host HOST --port PORT"

# Endpoints with a model loaded on them in this process: ggml keeps one connection per endpoint
# open while buffers live there, and an rpc-server serves one client at a time, so a second
# check would wait behind our own connection.
_LIVE: dict[str, int] = {}


# ---- endpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """HOST:PORT (IPv4 address or host name; llama.cpp's RPC client speaks IPv4 only)."""
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port:
        raise RpcEndpointError(f"RPC server {text!r} is not HOST:PORT (e.g. 192.168.1.20:50052)")
    if any(c.isspace() or c in "/,@" for c in host):
        raise RpcEndpointError(f"RPC server {text!r}: {host!r} is not a host name or address")
    if ":" in host or host.startswith("["):
        raise RpcEndpointError(
            f"RPC server {text!r}: IPv6 addresses are not supported by llama.cpp's RPC client; "
            "use an IPv4 address or a host name"
        )
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise RpcEndpointError(f"RPC server {text!r}: the port must be a number from 1 to 65535")
    return Endpoint(host, int(port))


def parse_endpoints(value: str | Sequence[str]) -> tuple[str, ...]:
    """A comma-separated list (the --rpc flag) or a list (models.toml) as canonical strings."""
    items = value.split(",") if isinstance(value, str) else list(value)
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise RpcEndpointError(f"RPC server {item!r} is not a \"HOST:PORT\" string")
        endpoint = str(parse_endpoint(item))
        if endpoint in found:
            raise RpcEndpointError(f"RPC server {endpoint} is given twice")
        found.append(endpoint)
    if not found:
        raise RpcEndpointError("no RPC server given (expected HOST:PORT[,HOST:PORT...])")
    return tuple(found)


def _ipv4_addresses(endpoint: Endpoint) -> list[str]:
    try:
        infos = socket.getaddrinfo(endpoint.host, endpoint.port, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RpcConnectionError(
            f"RPC server {endpoint}: cannot resolve host {endpoint.host!r} to an IPv4 address"
        ) from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_trusted_address(address: str) -> bool:
    """Loopback, private (RFC 1918) or link-local: not reachable from the internet at large."""
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or ip.is_private or ip.is_link_local


def exposure_warning(endpoints: dict[str, list[str]]) -> str | None:
    """A warning for servers (endpoint -> its addresses) not on a loopback or private address."""
    exposed = [ep for ep, addrs in endpoints.items() if not all(map(is_trusted_address, addrs))]
    if not exposed:
        return None
    return (
        f"RPC server {', '.join(exposed)} is not on a loopback or private address: llama.cpp's "
        "RPC protocol has no authentication or encryption, so anyone who can reach the server "
        "can use it; keep rpc-server on a trusted network"
    )


# ---- the server check: connect and the RPC hello, from Python, with timeouts -----------------


def _hello_request() -> bytes:
    return struct.pack("<BQ", RPC_CMD_HELLO, CONN_CAPS_SIZE) + bytes(CONN_CAPS_SIZE)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _connect(endpoint: Endpoint, address: str, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((address, endpoint.port), timeout=timeout)
    except ConnectionRefusedError:
        raise RpcConnectionError(
            f"cannot reach RPC server {endpoint}: connection refused (is rpc-server running "
            f"there? {SERVER_HINT})"
        ) from None
    except TimeoutError:
        raise RpcConnectionError(
            f"cannot reach RPC server {endpoint}: no answer within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise RpcConnectionError(
            f"cannot reach RPC server {endpoint}: {exc.strerror or exc}"
        ) from None


def _hello(sock: socket.socket, endpoint: Endpoint, timeout: float) -> tuple[int, int, int]:
    sock.settimeout(timeout)
    try:
        sock.sendall(_hello_request())
        head = _recv_exactly(sock, 8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        body = _recv_exactly(sock, HELLO_ANSWER_SIZE) if size == HELLO_ANSWER_SIZE else b""
    except TimeoutError:
        raise RpcConnectionError(
            f"RPC server {endpoint} accepted the connection but did not answer within "
            f"{timeout:g} s (an rpc-server serves one client at a time: is another specchat or "
            "llama.cpp using it?)"
        ) from None
    except OSError as exc:
        raise RpcConnectionError(
            f"RPC server {endpoint} failed during the handshake: {exc.strerror or exc}"
        ) from None
    if size == -1:
        raise RpcConnectionError(
            f"{endpoint} closed the connection during the RPC handshake (not an rpc-server, or "
            "one of another llama.cpp version)"
        )
    if size != HELLO_ANSWER_SIZE or len(body) != HELLO_ANSWER_SIZE:
        raise RpcConnectionError(
            f"{endpoint} answered the RPC handshake in another format ({size} bytes): run an "
            "rpc-server built from the same llama-cpp-python version (packaging/rpc-server.sh)"
        )
    return body[0], body[1], body[2]


def check_server(
    endpoint: str, *, connect_timeout: float = CONNECT_TIMEOUT_S,
    answer_timeout: float = ANSWER_TIMEOUT_S,
) -> list[str]:
    """Connect and exchange the RPC hello (then close); returns the server's IPv4 addresses.
    Raises RpcConnectionError, in one line, for anything ggml-rpc would abort the process on."""
    ep = parse_endpoint(endpoint)
    addresses = _ipv4_addresses(ep)
    with _connect(ep, addresses[0], connect_timeout) as sock:
        major, minor, patch = _hello(sock, ep, answer_timeout)
    if major != RPC_PROTO_MAJOR:
        raise RpcConnectionError(
            f"RPC server {ep} speaks RPC protocol {major}.{minor}.{patch}, this build "
            f"{RPC_PROTO_MAJOR}.x: run an rpc-server built from the same llama-cpp-python "
            "version (packaging/rpc-server.sh)"
        )
    return addresses


# ---- the ggml library: the RPC registry and the abort callback -------------------------------

ADD_SERVER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)


def _bind(lib: Any) -> None:
    lib.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    lib.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_backend_reg_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_dev_count.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_dev_get.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def rpc_registry() -> int | None:
    """ggml's RPC backend registry, or None when this build has no RPC."""
    from specchat.engine.llama.backend import init_backend

    init_backend()
    lib = ggml_library()
    if lib is None:
        return None
    try:
        _bind(lib)
    except AttributeError:
        return None
    return lib.ggml_backend_reg_by_name(b"RPC") or None


def rpc_available() -> bool:
    return rpc_registry() is not None


def require_rpc() -> int:
    reg = rpc_registry()
    if reg is None:
        raise RpcUnavailableError(f"this llama-cpp-python build has no RPC backend; {REBUILD_HINT}")
    return reg


# ---- servers as devices ----------------------------------------------------------------------


@dataclass(frozen=True)
class RpcDevice:
    endpoint: str
    name: str  # ggml's name: RPC0, RPC1...
    handle: int  # ggml_backend_dev_t
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class RpcServers:
    """Registered servers: their devices (in the order given) and what to warn about."""

    devices: tuple[RpcDevice, ...]
    warning: str | None


def _memory(handle: int) -> tuple[int, int]:
    lib = ggml_library()
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    lib.ggml_backend_dev_memory(handle, ctypes.byref(free), ctypes.byref(total))
    return free.value, total.value


def _devices_of(endpoint: str, reg: int, runner: RpcRunner) -> list[RpcDevice]:
    lib = ggml_library()  # typed for the device calls
    found = []
    for i in range(lib.ggml_backend_reg_dev_count(reg)):
        handle = lib.ggml_backend_reg_dev_get(reg, i)
        free, total = runner.call(_memory, handle, timeout=QUERY_TIMEOUT_S)
        name = (lib.ggml_backend_dev_name(handle) or b"RPC").decode(errors="replace")
        found.append(RpcDevice(endpoint, name, handle, free, total))
    return found


def register_servers(endpoints: Sequence[str], runner: RpcRunner) -> RpcServers:
    """Check each server from Python, then add it to ggml (on the runner: a server that fails
    between the check and ggml's own connection is an error, not an abort)."""
    rpc_reg = require_rpc()
    install_abort_guard()
    lib = ggml_library()
    address = lib.ggml_backend_reg_get_proc_address(rpc_reg, b"ggml_backend_rpc_add_server")
    if not address:
        raise RpcUnavailableError(f"this build's RPC backend cannot add servers; {REBUILD_HINT}")
    add_server = ADD_SERVER(address)
    addresses: dict[str, list[str]] = {}
    devices: list[RpcDevice] = []
    for endpoint in endpoints:
        runner.refuse_if_broken()
        if _LIVE.get(endpoint):  # this process is its client already (one client at a time)
            addresses[endpoint] = _ipv4_addresses(parse_endpoint(endpoint))
        else:
            addresses[endpoint] = check_server(endpoint)
        reg = runner.call(add_server, endpoint.encode(), timeout=QUERY_TIMEOUT_S)
        if not reg:
            raise RpcConnectionError(f"RPC server {endpoint} offers no device")
        devices += _devices_of(endpoint, reg, runner)
    return RpcServers(tuple(devices), exposure_warning(addresses))


def local_gpus() -> list[Device]:
    """The local devices llama.cpp offloads to by default: GPUs, else integrated GPUs."""
    found = local_devices()
    return [d for d in found if d.kind == "GPU"] or [d for d in found if d.kind == "iGPU"]


# ---- where the target's layers go ------------------------------------------------------------


def layer_split(n_layers: int, n_gpu_layers: int, weights: Sequence[float]) -> list[int]:
    """Layers (the output layer counted: n_layers + 1 in all) llama.cpp gives each device of
    the list for these split weights; mirrors llama_model::load_tensors (LAYER split)."""
    total = n_layers + 1
    ngl = n_gpu_layers if n_gpu_layers >= 0 else total
    start = max(total - ngl, 0)
    act = min(ngl, total) if weights else 0
    counts = [0] * len(weights)
    if act == 0:
        return counts
    cum = np.cumsum(np.asarray(weights, dtype=np.float32), dtype=np.float32)
    points = (cum / cum[-1]).astype(np.float32).tolist()
    for il in range(start, start + act):
        x = float(np.float32(il - start) / np.float32(act))
        counts[min(bisect.bisect_right(points, x), len(counts) - 1)] += 1
    return counts


def describe_remote(devices: Sequence[RpcDevice], counts: Sequence[int], n_layers: int) -> str:
    """e.g. "31 of 31 layers (output included) on RPC 127.0.0.1:50052"."""
    per_endpoint: dict[str, int] = {}
    for dev, n in zip(devices, counts, strict=True):
        per_endpoint[dev.endpoint] = per_endpoint.get(dev.endpoint, 0) + n
    remote = sum(per_endpoint.values())
    where = ", ".join(
        ep if len(per_endpoint) == 1 else f"{ep} ({n})" for ep, n in per_endpoint.items()
    )
    return f"{remote} of {n_layers + 1} layers (output included) on RPC {where}"


# ---- one target's placement: its runner, its devices, the split -------------------------------


class RpcPlacement:
    """The RPC side of one model: checked and registered servers, the device list and split
    for its model parameters, and the runner its server-touching calls go through."""

    def __init__(self, endpoints: Sequence[str]) -> None:
        self.runner = RpcRunner(endpoints)
        try:
            self.servers = register_servers(endpoints, self.runner)
        except BaseException:
            self.runner.stop()
            raise
        local = local_gpus()
        lib = ggml_library()
        # RPC devices first, as llama.cpp orders them (fewer transfers), then local GPUs.
        handles = [d.handle for d in self.servers.devices]
        handles += [lib.ggml_backend_dev_get(d.index) for d in local]
        weights = [float(d.free_bytes) for d in (*self.servers.devices, *local)]
        if not any(weights):
            weights = [1.0] * len(handles)
        self.weights = weights
        self._devices = (ctypes.c_void_p * (len(handles) + 1))(*handles, None)
        self._split: Any = None
        if len(handles) > 1:  # fixed here so that the split reported is the split used
            import llama_cpp as lc

            split = (ctypes.c_float * lc.llama_max_devices())()
            for i, w in enumerate(weights):
                split[i] = w
            self._split = split

    def apply(self, params: Any) -> None:
        """Point llama_model_params at these devices (kept alive by self)."""
        params.devices = ctypes.addressof(self._devices)
        if self._split is not None:
            params.tensor_split = self._split

    def describe(self, n_layers: int, n_gpu_layers: int) -> str:
        counts = layer_split(n_layers, n_gpu_layers, self.weights)
        return describe_remote(self.servers.devices, counts[: len(self.servers.devices)], n_layers)

    @property
    def broken(self) -> bool:
        return self.runner.broken is not None

    def hold(self) -> None:
        """A model now lives on these servers (its connection stays open)."""
        for endpoint in self.runner.endpoints:
            _LIVE[endpoint] = _LIVE.get(endpoint, 0) + 1

    def release(self) -> None:
        """That model was freed: its connection and the runner's thread can go."""
        for endpoint in self.runner.endpoints:
            _LIVE[endpoint] = max(0, _LIVE.get(endpoint, 0) - 1)
        self.runner.stop()
