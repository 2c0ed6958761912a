"""Server parts without a model: the one keep-alive loop both streams (chat, text completion)
use (comments while nothing comes, batches as the stream renders them, the job cancelled however
the stream ends), and the --suffix-history flag's bound."""

from __future__ import annotations

import asyncio

from specchat.server.app import KEEPALIVE, Channel, sse_stream
from specchat.server.worker import Item, Job


def _job() -> Job:
    return Job(lambda engine, cancel: iter(()), lambda batch: None)


def test_keepalives_while_waiting_then_batches_until_the_end() -> None:
    async def scenario() -> tuple[list[bytes], bool]:
        channel, job = Channel(), _job()
        seen: list[list[Item]] = []

        def render(batch: list[Item]) -> tuple[bytes, bool]:
            seen.append(batch)
            return f"batch {len(seen)}\n".encode(), len(seen) == 2

        out: list[bytes] = []
        stream = sse_stream(None, channel, job, 0.02, render, opening=b"open\n")
        async for part in stream:
            out.append(part)
            if len(out) == 3:  # the opening and two keep-alives: the engine answers now
                channel.deliver([])
                channel.deliver([])
        return out, job.cancel.is_set()

    out, cancelled = asyncio.run(scenario())
    assert out[0] == b"open\n"
    assert out[1] == out[2] == KEEPALIVE
    assert [p for p in out[3:] if p != KEEPALIVE] == [b"batch 1\n", b"batch 2\n"]
    assert cancelled  # the end of a stream stops its job (a no-op once it is done)


def test_a_client_gone_mid_stream_cancels_the_job() -> None:
    async def scenario() -> bool:
        channel, job = Channel(), _job()
        stream = sse_stream([], channel, job, 10.0, lambda batch: (b"x", False))
        assert await anext(stream) == b"x"
        await stream.aclose()  # what Starlette does when the connection closes
        return job.cancel.is_set()

    assert asyncio.run(scenario())


def test_a_negative_suffix_history_is_one_line_and_exit_2(capsys, tmp_path) -> None:
    from specchat.cli import main

    assert main(["serve", "--suffix-history", "-1", "--target", str(tmp_path / "x.gguf")]) == 2
    err = capsys.readouterr().err
    assert "--suffix-history must be 0 or more" in err and err.count("\n") == 1
