"""The native peer's output is read whatever bytes the binary prints (a generated token can be
half of a UTF-8 character, e.g. random weights, or a reply cut mid-character)."""

from __future__ import annotations

from pathlib import Path

from specchat.bench.peers import parse_native_spec, run_native


def test_invalid_utf8_in_native_output_is_read(tmp_path: Path) -> None:
    exe = tmp_path / "llama-speculative-simple"
    exe.write_text("#!/bin/sh\nprintf 'hi \\321\\321 there\\n'\n"
                   "printf 'decoded 16 tokens in 0.5 seconds, speed: 32.0 t/s\\n' >&2\n")
    exe.chmod(0o755)
    out = run_native(exe, [])
    assert "hi" in out and "there" in out
    assert parse_native_spec(out).tokens_per_second == 32.0
