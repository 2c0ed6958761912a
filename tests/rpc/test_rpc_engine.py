"""The target on a real llama.cpp rpc-server over loopback, the draft local: exactness, the load
notice, doctor, and every failure as one clear line (an unreachable server, a server killed
mid-reply) instead of ggml's abort of the whole process."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from rpc.servers import RpcServer, free_port, require_rpc_build
from specchat import cli
from specchat.engine import load_engine
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)
from specchat.errors import RpcConnectionError

pytestmark = pytest.mark.real

PROMPT = "List three facts about the moon."
N_TOKENS = 40
SUBPROCESS_TIMEOUT_S = 300


@pytest.fixture(autouse=True, scope="module")
def rpc_build() -> None:
    """These tests run in CI, not skipped: the build must have RPC."""
    require_rpc_build()


def _settings(path: Path, rpc: tuple[str, ...] = ()) -> ModelSettings:
    # one thread here and on the server: see README "Exactness"
    return ModelSettings(
        path=path, n_ctx=512, n_threads=1, rpc_servers=rpc, n_gpu_layers=-1 if rpc else 0
    )


def _greedy(target: ModelSettings, draft: ModelSettings | None) -> DoneEvent:
    mode = DraftMode.MODEL if draft is not None else DraftMode.NONE
    spec = SpecSettings(mode=mode, draft_max=4, adaptive=False, suffix=False)
    engine = load_engine(target, draft, spec)
    try:
        events = engine.chat([Message("user", PROMPT)], GenerationSettings(max_tokens=N_TOKENS))
        return [e for e in events if isinstance(e, DoneEvent)][-1]
    finally:
        engine.close()


@pytest.fixture(scope="module")
def local_ids(real_models: dict[str, Path]) -> tuple[int, ...]:
    done = _greedy(_settings(real_models["smollm2"]), None)
    assert len(done.token_ids) >= 10
    return done.token_ids


def test_target_on_rpc_matches_local_greedy_token_for_token(
    real_models: dict[str, Path], rpc_server: str, local_ids: tuple[int, ...]
) -> None:
    done = _greedy(_settings(real_models["smollm2"], (rpc_server,)), None)
    assert done.token_ids == local_ids


def test_rpc_target_with_local_draft_matches_local_greedy(
    real_models: dict[str, Path],
    derived_models: dict[str, Path],
    rpc_server: str,
    local_ids: tuple[int, ...],
) -> None:
    draft = _settings(derived_models["smollm2-q4_0"])
    done = _greedy(_settings(real_models["smollm2"], (rpc_server,)), draft)
    assert done.stats.model_drafted > 0  # the local draft did draft
    assert done.stats.accepted < done.stats.drafted or done.stats.accepted > 0
    assert done.token_ids == local_ids


def test_two_servers_share_the_target_and_match_local_greedy(
    real_models: dict[str, Path],
    start_rpc_server: Callable[..., RpcServer],
    local_ids: tuple[int, ...],
) -> None:
    first, second = start_rpc_server().endpoint, start_rpc_server().endpoint
    target = _settings(real_models["smollm2"], (first, second))
    engine = load_engine(target, None, SpecSettings(mode=DraftMode.NONE))
    try:
        remote = engine.info.target.remote
        n = engine.info.target.n_layers + 1
        events = engine.chat([Message("user", PROMPT)], GenerationSettings(max_tokens=N_TOKENS))
        done = [e for e in events if isinstance(e, DoneEvent)][-1]
    finally:
        engine.close()
    assert remote.startswith(f"{n} of {n} layers (output included) on RPC {first} (")
    assert f", {second} (" in remote
    assert done.token_ids == local_ids


def test_load_says_which_part_of_the_target_is_remote(
    real_models: dict[str, Path], derived_models: dict[str, Path], rpc_server: str
) -> None:
    target = _settings(real_models["smollm2"], (rpc_server,))
    engine = load_engine(target, _settings(derived_models["smollm2-q4_0"]), SpecSettings())
    try:
        info = engine.info
    finally:
        engine.close()
    n = info.target.n_layers + 1
    expected = f"{n} of {n} layers (output included) on RPC {rpc_server}"
    assert info.target.remote == expected
    assert f"target: {expected}" in info.notices
    assert info.draft is not None and info.draft.remote == ""  # the draft stays local
    assert not any("no authentication" in n for n in info.notices)  # loopback: no warning


def test_layers_the_user_sets_are_the_layers_sent(
    real_models: dict[str, Path], rpc_server: str
) -> None:
    target = _settings(real_models["smollm2"], (rpc_server,))
    engine = load_engine(
        dataclasses.replace(target, n_gpu_layers=10), None, SpecSettings(mode=DraftMode.NONE)
    )
    try:
        assert engine.info.target.remote.startswith("10 of ")
    finally:
        engine.close()


def test_unreachable_server_is_a_clear_error_at_load(real_models: dict[str, Path]) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    with pytest.raises(RpcConnectionError, match="connection refused"):
        load_engine(_settings(real_models["smollm2"], (endpoint,)), None, SpecSettings())


def test_doctor_lists_the_server_device(
    rpc_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["doctor", "--rpc", rpc_server])
    out = capsys.readouterr().out
    assert code == 0
    assert "rpc           built with RPC: yes" in out
    lines = [line for line in out.splitlines() if line.startswith(f"  server {rpc_server}  RPC")]
    assert len(lines) == 1 and "GB free (--rpc)" in lines[0], out


def test_doctor_lists_the_servers_models_toml_names(
    rpc_server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "models.toml"
    cfg.write_text(f'[pairs.far]\nrpc = ["{rpc_server}"]\n[pairs.far.target]\npath = "t.gguf"\n')
    code = cli.main(["--config", str(cfg), "doctor"])
    out = capsys.readouterr().out
    assert code == 0
    assert any(
        line.startswith(f"  server {rpc_server}  RPC") and line.endswith("(models.toml)")
        for line in out.splitlines()
    ), out


# ---- the CLI in a subprocess: what a user sees -----------------------------------------------


def _specchat(*argv: str) -> list[str]:
    return [sys.executable, "-m", "specchat", *argv]


def _ask(model: Path, endpoint: str, *extra: str) -> list[str]:
    return _specchat(
        "ask", "--target", str(model), "--rpc", endpoint, "--threads", "1", "--n-ctx", "2048",
        *extra,
    )


def test_ask_with_unreachable_server_exits_2_with_one_line(
    real_models: dict[str, Path],
) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    proc = subprocess.run(
        _ask(real_models["smollm2"], endpoint, "hi"),
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"specchat: error: cannot reach RPC server {endpoint}")


def _read_until(
    stream: IO[bytes] | None, enough: Callable[[bytes], bool]
) -> tuple[bytearray, threading.Event]:
    """Collect a pipe in the background; the event is set once `enough(data)` holds."""
    data, ready = bytearray(), threading.Event()

    def pump() -> None:
        assert stream is not None
        fd = stream.fileno()
        while chunk := os.read(fd, 4096):
            data.extend(chunk)
            if enough(bytes(data)):
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    return data, ready


def test_server_killed_mid_reply_keeps_the_text_and_exits_2(
    real_models: dict[str, Path], start_rpc_server: Callable[..., RpcServer]
) -> None:
    server = start_rpc_server()
    argv = _ask(
        real_models["smollm2"], server.endpoint, "--no-draft", "--max-tokens", "1500",
        "Write a long essay about the history of Rome.",
    )
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, started = _read_until(proc.stdout, lambda d: len(d) >= 40)
        err, _ = _read_until(proc.stderr, lambda d: False)
        assert started.wait(SUBPROCESS_TIMEOUT_S), "no text before the timeout"
        assert proc.poll() is None, "the reply ended before the server could be killed"
        seen = bytes(out)
        server.kill()  # SIGKILL: no goodbye on the socket
        rc = proc.wait(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    text, errors = bytes(out).decode(), bytes(err).decode()
    assert rc == 2, (rc, errors)  # not -6 (SIGABRT): ggml's abort was caught
    assert "Traceback" not in errors and "ggml" not in errors.lower()  # nor ggml's abort text
    lines = errors.strip().splitlines()
    assert lines[-1] == (
        f"specchat: error: RPC server {server.endpoint} stopped answering; this model is "
        "unusable until specchat restarts"
    ), errors
    assert len(seen) >= 40 and text.startswith(seen.decode(errors="ignore")[:-4])  # all kept


# ---- the chat app ----------------------------------------------------------------------------


async def test_app_shows_the_lost_server_on_the_reply_and_keeps_its_text(
    real_models: dict[str, Path], start_rpc_server: Callable[..., RpcServer], tmp_path: Path
) -> None:
    from specchat.cli import build_parser
    from specchat.commands.model_args import pair_request
    from specchat.store import ChatStore
    from specchat.store.records import MessageStatus
    from specchat.tui import SpecchatApp
    from specchat.tui.loader import CliLoader
    from tui.conftest import ready, send, wait_for

    server = start_rpc_server()
    args = build_parser().parse_args([
        "chat", "--target", str(real_models["smollm2"]), "--no-draft", "--rpc", server.endpoint,
        "--threads", "1", "--n-ctx", "2048", "--max-tokens", "1500",
    ])
    app = SpecchatApp(
        ChatStore(tmp_path / "h.sqlite3"),
        CliLoader(pair_request(args), recent_file=tmp_path / "r.json"),
        export_dir=tmp_path,
    )
    async with app.run_test() as pilot:
        screen = await ready(pilot, timeout=120)
        assert screen.engine_state == "ready", screen.engine_error
        assert screen.info is not None and f"on RPC {server.endpoint}" in screen.info.target.remote
        await send(pilot, "Write a long essay about the history of Rome.", wait=False)

        def partial() -> str:
            messages = app.store.messages(screen.chat.id)
            return messages[-1].content if messages and messages[-1].role == "assistant" else ""

        await wait_for(pilot, lambda: len(partial()) >= 40, 120)
        seen = partial()
        server.kill()
        await wait_for(pilot, lambda: screen.replies_finished > 0 and screen.reply is None, 120)
        record = app.store.messages(screen.chat.id)[-1]
        assert record.status is MessageStatus.ERROR
        assert record.notices == (
            f"RPC server {server.endpoint} stopped answering; this model is unusable until "
            "specchat restarts",
        )
        assert record.content.startswith(seen)  # what was generated is kept
