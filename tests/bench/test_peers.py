"""Peers: reading llama.cpp's native binaries' output, and finding them."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.bench.peers import (
    find_native,
    native_curve_args,
    native_spec_args,
    parse_native_curve,
    parse_native_spec,
)
from specchat.errors import SpecchatError

SPEC_OUTPUT = """\
main: encoded   42 tokens in    0.512 seconds, speed:   82.031 t/s
main: decoded   65 tokens in    4.100 seconds, speed:   15.854 t/s

main: n_draft   = 6
main: n_predict = 65
main: n_drafted = 60
main: n_accept  = 54
main: accept    = 90.000%
"""

CURVE_OUTPUT = """\
[
  {"n_prompt": 1, "n_gen": 0, "n_depth": 400, "avg_ns": 40000000, "avg_ts": 25.0},
  {"n_prompt": 9, "n_gen": 0, "n_depth": 400, "avg_ns": 172000000, "avg_ts": 52.3}
]
"""


def test_parse_native_spec() -> None:
    run = parse_native_spec(SPEC_OUTPUT)
    assert run.tokens_per_second == pytest.approx(15.854)
    assert (run.drafted, run.accepted) == (60, 54)
    with pytest.raises(SpecchatError, match="no 'decoded"):
        parse_native_spec("main: error: failed to load model\n")


def test_parse_native_curve() -> None:
    assert parse_native_curve("build: 1234\n" + CURVE_OUTPUT) == {1: 40.0, 9: 172.0}
    with pytest.raises(SpecchatError, match="no prompt-processing results"):
        parse_native_curve("nothing here")
    args = " ".join(native_curve_args(Path("t.gguf"), (1, 9), 400, 3, 2, 0))
    assert "-p 1,9" in args and "-n 0" in args and "-d 400" in args and "-t 2" in args


def test_native_spec_args_use_draft_simple_and_greedy() -> None:
    args = native_spec_args(Path("t.gguf"), Path("d.gguf"), "hi", 64, 6, 2048, 2, 0)
    joined = " ".join(args)
    assert "--spec-type draft-simple" in joined and "--spec-draft-n-max 6" in joined
    assert "--temp 0" in joined and "-t 2" in joined and "-md d.gguf" in joined
    ngram = " ".join(native_spec_args(Path("t.gguf"), None, "hi", 64, 6, 2048, 2, 0,
                                      "ngram-mod"))
    assert "--spec-type ngram-mod" in ngram and "-md" not in ngram
    alone = " ".join(native_spec_args(Path("t.gguf"), None, "hi", 64, 6, 2048, 2, 0, "none"))
    assert "--spec-ngram-mod-n-match 1024" in alone and "--no-repack" in alone
    with pytest.raises(SpecchatError, match="needs a draft model"):
        native_spec_args(Path("t.gguf"), None, "hi", 64, 6, 2048, 2, 0)


def test_find_native(tmp_path: Path) -> None:
    with pytest.raises(SpecchatError, match="not a folder"):
        find_native(tmp_path / "nope")
    with pytest.raises(SpecchatError, match="llama-speculative-simple not found"):
        find_native(tmp_path)
    for name in ("llama-speculative-simple", "llama-bench"):
        (tmp_path / name).write_text("#!/bin/sh\n")
    assert find_native(tmp_path) == (tmp_path / "llama-speculative-simple",
                                     tmp_path / "llama-bench")
