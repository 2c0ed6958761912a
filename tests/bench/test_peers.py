"""Peers: reading llama.cpp's native binaries' output, and finding them."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.bench.peers import (
    find_native,
    native_spec_args,
    parse_native_bench,
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

BENCH_OUTPUT = """\
[
  {"model_type": "llama ?B Q4_1", "n_prompt": 0, "n_gen": 64, "avg_ns": 5000000000,
   "avg_ts": 12.800000, "stddev_ts": 0.0}
]
"""


def test_parse_native_spec() -> None:
    run = parse_native_spec(SPEC_OUTPUT)
    assert run.tokens_per_second == pytest.approx(15.854)
    assert (run.drafted, run.accepted) == (60, 54)
    with pytest.raises(SpecchatError, match="no 'decoded"):
        parse_native_spec("main: error: failed to load model\n")


def test_parse_native_bench() -> None:
    assert parse_native_bench("build: 1234\n" + BENCH_OUTPUT).tokens_per_second == 12.8
    with pytest.raises(SpecchatError, match="no text-generation result"):
        parse_native_bench('[{"n_prompt": 512, "n_gen": 0, "avg_ts": 100.0}]')
    with pytest.raises(SpecchatError):
        parse_native_bench("nothing here")


def test_native_spec_args_use_draft_simple_and_greedy() -> None:
    args = native_spec_args(Path("t.gguf"), Path("d.gguf"), "hi", 64, 6, 2048, 2, 0)
    joined = " ".join(args)
    assert "--spec-type draft-simple" in joined and "--spec-draft-n-max 6" in joined
    assert "--temp 0" in joined and "-t 2" in joined and "-md d.gguf" in joined


def test_find_native(tmp_path: Path) -> None:
    with pytest.raises(SpecchatError, match="not a folder"):
        find_native(tmp_path / "nope")
    with pytest.raises(SpecchatError, match="llama-speculative-simple not found"):
        find_native(tmp_path)
    for name in ("llama-speculative-simple", "llama-bench"):
        (tmp_path / name).write_text("#!/bin/sh\n")
    assert find_native(tmp_path) == (tmp_path / "llama-speculative-simple",
                                     tmp_path / "llama-bench")
