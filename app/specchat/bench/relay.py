"""A TCP relay that adds a fixed delay to every message, each way: a slow network on loopback.

Made to measure how llama.cpp's RPC backend (a target on another machine) behaves as the network
gets slower, without a second machine:

    python -m specchat.bench.relay --listen 127.0.0.1:50053 --to 127.0.0.1:50052 --delay-ms 2

then point the client at 127.0.0.1:50053. A "message" is what one read from a socket returns
(TCP has no message boundaries; RPC commands and replies arrive as one or a few reads each). Each
is forwarded `delay_ms` after it arrived, in order, with later messages already on their way
(the delay is latency, not a bandwidth cap). In-process: `with DelayRelay(to, delay_ms) as relay:`
and connect to `relay.endpoint`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from specchat.errors import SpecchatError

READ_SIZE = 1 << 16


class RelayError(SpecchatError):
    """The relay cannot listen or its arguments are wrong."""


def parse_endpoint(text: str) -> tuple[str, int]:
    """"HOST:PORT" (IPv6 as "[::1]:PORT") -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise RelayError(f"'{text}' is not HOST:PORT")
    return host, int(port)


@dataclass
class RelayStats:
    """Messages and bytes forwarded so far, per direction."""

    to_server_messages: int = 0
    to_server_bytes: int = 0
    to_client_messages: int = 0
    to_client_bytes: int = 0
    connections: int = 0


@dataclass
class _Pipe:
    """One direction of one connection: reads stamped with their due time, then written."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    delay_s: float
    count: str  # the RelayStats field prefix, "to_server" or "to_client"
    queue: asyncio.Queue[tuple[float, bytes]] = field(default_factory=asyncio.Queue)


class DelayRelay:
    """Listen on `listen` ("HOST:PORT", port 0 = any free port), forward each connection to
    `target`, adding `delay_ms` to every message in each direction. start() returns at once with
    `endpoint` bound; stop() closes everything. Runs its own event loop in a daemon thread."""

    def __init__(self, target: str, delay_ms: float, listen: str = "127.0.0.1:0") -> None:
        if delay_ms < 0:
            raise RelayError(f"the delay must be 0 ms or more, not {delay_ms}")
        self.target = parse_endpoint(target)
        self.listen = parse_endpoint(listen)
        self.delay_s = delay_ms / 1000.0
        self.stats = RelayStats()
        self.endpoint = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> DelayRelay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Bind and start forwarding; returns the bound endpoint ("HOST:PORT")."""
        loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, self.listen[0], self.listen[1]))
        except OSError as exc:
            loop.close()
            raise RelayError(f"cannot listen on {self.listen[0]}:{self.listen[1]}: "
                             f"{exc.strerror or exc}") from exc
        host, port = self._server.sockets[0].getsockname()[:2]
        self.endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="delay-relay", daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        """Stop listening and close every relayed connection."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        pipes = (_Pipe(client_r, server_w, self.delay_s, "to_server"),
                 _Pipe(server_r, client_w, self.delay_s, "to_client"))
        try:
            await asyncio.gather(*(self._run_pipe(p) for p in pipes))
        except (OSError, asyncio.IncompleteReadError):
            pass  # one side went away: close both
        finally:
            for w in (client_w, server_w):
                w.close()
            self._tasks.discard(task)

    async def _run_pipe(self, pipe: _Pipe) -> None:
        """Read and write concurrently, so that later messages travel while one is delayed."""
        writer = asyncio.ensure_future(self._write_due(pipe))
        try:
            await self._read_stamped(pipe)
            await writer
        finally:
            writer.cancel()

    async def _read_stamped(self, pipe: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        while data := await pipe.reader.read(READ_SIZE):
            self._count(pipe.count, data)
            pipe.queue.put_nowait((loop.time() + pipe.delay_s, data))
        pipe.queue.put_nowait((loop.time() + pipe.delay_s, b""))  # end of stream, also delayed

    async def _write_due(self, pipe: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await pipe.queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if pipe.writer.can_write_eof():
                    pipe.writer.write_eof()
                return
            pipe.writer.write(data)
            await pipe.writer.drain()

    def _count(self, direction: str, data: bytes) -> None:
        messages = f"{direction}_messages"
        nbytes = f"{direction}_bytes"
        setattr(self.stats, messages, getattr(self.stats, messages) + 1)
        setattr(self.stats, nbytes, getattr(self.stats, nbytes) + len(data))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m specchat.bench.relay",
        description="Forward TCP connections, adding a fixed delay to every message each way "
                    "(a slow network on one machine).")
    p.add_argument("--listen", required=True, metavar="HOST:PORT",
                   help="where clients connect (port 0: any free port)")
    p.add_argument("--to", required=True, metavar="HOST:PORT", help="the real server")
    p.add_argument("--delay-ms", type=float, required=True, metavar="D",
                   help="milliseconds added to each message, in each direction")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        relay = DelayRelay(args.to, args.delay_ms, listen=args.listen)
        endpoint = relay.start()
    except SpecchatError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"relay {endpoint} -> {args.to}, +{args.delay_ms:g} ms per message each way "
          "(Ctrl-C or SIGTERM stops)", file=sys.stderr, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())  # a script's `kill`: stop cleanly
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    relay.stop()
    s = relay.stats
    print(f"relayed {s.connections} connections; to server {s.to_server_messages} messages "
          f"({s.to_server_bytes} B), to client {s.to_client_messages} messages "
          f"({s.to_client_bytes} B)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
