"""`specchat serve`: the pair behind an OpenAI-compatible local API (Starlette on uvicorn).

Loads the pair once, then serves POST /v1/chat/completions, GET /v1/models and GET /health
until Ctrl+C or SIGTERM, which end in-flight streams with an error event and free the models."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from specchat.commands.model_args import add_model_args, generation_settings, pair_request
from specchat.config.prompt_cache import open_prompt_cache
from specchat.errors import SpecchatError
from specchat.pair_request import load_pair, resolve_model_request

API_KEY_ENV = "SPECCHAT_API_KEY"
MAX_QUEUE = 64  # as server.app.MAX_QUEUE (not imported: the serve extra may be missing)
SUFFIX_HISTORY = 262_144  # as engine.suffix.HISTORY_TOKENS (not imported: llama.cpp)
GRACE_S = 10  # after Ctrl+C, connections still open this long are closed


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve the pair over an OpenAI-compatible API",
        description="Serve the pair over an OpenAI-compatible local API "
        "(POST /v1/chat/completions, GET /v1/models, GET /health). The generation flags "
        "are the defaults for fields a request leaves out.",
    )
    add_model_args(p)
    net = p.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument(
        "--port", type=int, default=8080, help="port (default 8080; 0 = any free port)"
    )
    net.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"require Authorization: Bearer KEY (also: {API_KEY_ENV})",
    )
    p.add_argument(
        "--no-prompt-cache",
        action="store_true",
        help="do not save or restore conversations' model states (config.toml [prompt_cache]; "
        "see docs/prompt-cache.md)",
    )
    net.add_argument(
        "--max-queue",
        type=int,
        default=MAX_QUEUE,
        metavar="N",
        help=f"requests that may wait for their turn; past it, 429 with Retry-After "
        f"(default {MAX_QUEUE})",
    )
    p.add_argument(
        "--suffix-history",
        type=int,
        default=SUFFIX_HISTORY,
        metavar="N",
        help="tokens of earlier requests (prompts and replies) kept for the suffix drafter to "
        f"copy from, oldest dropped first (default {SUFFIX_HISTORY}; 0 = off: each request's "
        "own conversation only)",
    )
    net.add_argument(
        "--cors-origins",
        metavar="ORIGINS",
        default="",
        help="comma-separated browser origins allowed to call the API, or * for any "
        "(default: none, no CORS headers)",
    )
    net.add_argument(
        "--log-level", choices=("warning", "info", "debug"), default="info", help="server log"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    uvicorn = _server_modules()
    defaults = generation_settings(args)  # bad flags end here, before anything loads
    if args.max_queue < 0:
        raise SpecchatError(f"--max-queue must be 0 or more (got {args.max_queue})")
    if args.suffix_history < 0:
        raise SpecchatError(f"--suffix-history must be 0 or more (got {args.suffix_history})")
    origins = tuple(o.strip() for o in args.cors_origins.split(",") if o.strip())
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    sock = _listen(args.host, args.port)
    try:
        _warn_if_open(args.host, api_key)
        request = resolve_model_request(pair_request(args))
        cache = None if args.no_prompt_cache else open_prompt_cache()
        engine = load_pair(request, prompt_cache=cache)
    except BaseException:
        sock.close()
        raise
    from specchat.server import ServerConfig, create_app

    for notice in engine.info.notices:
        print(f"specchat: {notice}", file=sys.stderr)
    config = ServerConfig(
        model=request.label,
        defaults=defaults,
        api_key=api_key,
        max_queue=args.max_queue,
        cors_origins=origins,
        suffix_history=args.suffix_history,
    )
    app = create_app(engine, config)
    url = _url(sock)
    print(f"specchat: serving {request.label} at {url}/v1 (Ctrl+C stops)", file=sys.stderr)
    sys.stderr.flush()
    server_config = uvicorn.Config(
        app, log_level=args.log_level, timeout_graceful_shutdown=GRACE_S, lifespan="on"
    )
    _serve(uvicorn, server_config, sock, on_exit=app.state.api.stop)
    if cache is not None:
        cache.close()  # the last replies' states are written before the process ends
    return 0


def _server_modules() -> Any:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise SpecchatError(
            "specchat serve needs its extra: pip install 'specchat[serve]' "
            "(or pipx install 'specchat[serve]')"
        ) from None
    return uvicorn


def _listen(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise SpecchatError(f"--port must be in [0, 65535] (got {port})")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise SpecchatError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise SpecchatError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _warn_if_open(host: str, api_key: str | None) -> None:
    if api_key is None and not _is_loopback(host):
        print(
            f"specchat: warning: serving on {host} without an API key: anyone who can reach it "
            f"can use it (set --api-key or {API_KEY_ENV})",
            file=sys.stderr,
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve(uvicorn: Any, config: Any, sock: socket.socket, on_exit: Callable[[], None]) -> None:
    class StoppingServer(uvicorn.Server):  # type: ignore[misc,name-defined]
        """On Ctrl+C / SIGTERM, first stop the engine's work, so in-flight streams end (with an
        error event) instead of holding the shutdown until they finish."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            on_exit()
            super().handle_exit(sig, frame)

    StoppingServer(config).run(sockets=[sock])
