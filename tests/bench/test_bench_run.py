"""`specchat bench` end to end on real llama.cpp: a quick calibrated pair made from SmolLM2-135M
(epsilon 0, so every mode must reproduce target-alone greedy output token for token)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specchat.cli import main
from specchat.engine.llama.devices import backend
from specchat.engine.types import STATS_NAMES

pytestmark = [pytest.mark.real, pytest.mark.slow]



@pytest.fixture(scope="module")
def quick_pair(real_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, Path]:
    pytest.importorskip("gguf")
    from specchat.bench.make_pair import plan_copies, write_target

    draft = real_models["smollm2"]
    target = tmp_path_factory.mktemp("pair") / "target.gguf"
    write_target(draft, target, plan_copies(30, 6), 0.0)
    return target, draft


def test_bench_json(quick_pair: tuple[Path, Path], tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    target, draft = quick_pair
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"name": "count", "prompt": "Count from one to twenty in words."}\n'
                       '{"prompt": "Repeat exactly: the cat sat on the mat, the cat sat."}\n')
    argv = ["bench", "--target", str(target), "--draft", str(draft), "--prompts", str(prompts),
            "--rounds", "2", "--max-tokens", "12", "--draft-lengths", "2,3",
            "--physics-reps", "1", "--threads", "1", "--n-ctx", "512", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    modes = {m["mode"]: m for m in doc["modes"]}
    assert list(modes) == ["target", "k=2", "k=3", "adaptive", "chain", "lookup"]
    for m in modes.values():
        assert m["runs"] == 4  # 2 prompts x 2 rounds
        assert m["greedy_identity"] == 1.0, m["mode"]  # exactness: every run equals target alone
        assert m["speedup"]["n"] == 4
    # epsilon 0: the target's argmax is the draft's, so every drafted token is accepted
    assert modes["k=2"]["acceptance_rate"] == 1.0 and modes["k=2"]["alpha"] == 1.0
    assert modes["k=3"]["predicted_speedup"] > 0
    phys = doc["physics"]
    assert phys["c"] > 0 and set(phys["b"]) == {"1", "2", "3", "4"} and phys["b"]["1"] == 1.0
    run = doc["runs"][0]
    assert set(STATS_NAMES) <= set(run["stats"])
    assert len(run["token_ids"]) == run["stats"]["generated_tokens"]
    assert all(r["round"] in (0, 1) for r in doc["runs"])  # warm-up runs are not reported
    placement = doc["settings"]["placement"]  # where the figures were made
    assert placement["backend"] == backend()
    assert set(placement["gpu_layers"]) == {"target", "draft"}


def test_bench_table(quick_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    target, draft = quick_pair
    argv = ["bench", "--target", str(target), "--draft", str(draft), "--rounds", "1",
            "--max-tokens", "6", "--draft-lengths", "2", "--no-lookup", "--no-adaptive",
            "--physics-reps", "1", "--threads", "1", "--n-ctx", "512", "--no-warmup"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "speedup" in out and "k=2" in out and "physics: target" in out
    assert "3/3" in out  # 3 chat prompts, each identical to target alone
    assert f"backend: {backend()}" in out


def test_bench_cross_vocab_pair(real_models: dict[str, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    """The physics of a cross-vocabulary pair time the draft on the prompt in its own tokens
    (target token ids are out of the draft's range: llama_decode used to fail here)."""
    argv = ["bench", "--target", str(real_models["qwen"]), "--draft", str(real_models["smollm2"]),
            "--cross-vocab", "--rounds", "1", "--max-tokens", "6", "--draft-lengths", "2",
            "--no-lookup", "--no-warmup", "--physics-reps", "1", "--n-ctx", "512", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["physics"]["c"] > 0
    modes = {m["mode"]: m for m in doc["modes"]}
    assert all(m["greedy_identity"] == 1.0 for m in modes.values())


FAKE_SPEC = """#!/bin/sh
case "$*" in *n-match\\ 1024*) speed=10.0 ;; *ngram*) speed=15.0 ;; *) speed=12.0 ;; esac
echo "main: decoded   6 tokens in    0.600 seconds, speed:   $speed t/s" >&2
echo "main: n_drafted = 4" >&2
echo "main: n_accept  = 3" >&2
"""
FAKE_BENCH = """#!/bin/sh
echo '[{"n_prompt": 1, "n_gen": 0, "avg_ns": 40000000},'
echo ' {"n_prompt": 9, "n_gen": 0, "avg_ns": 172000000}]'
"""


def test_bench_beside_llama_cpp_with_its_cost_curve(
        quick_pair: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--peer llama.cpp runs llama.cpp's modes on the same prompts (stand-in programs here: the
    plumbing, not llama.cpp, is under test) and reports the verification cost by width: every
    row (specchat's verify pass), the last row only, and llama-bench's."""
    target, draft = quick_pair
    for name, text in (("llama-speculative-simple", FAKE_SPEC), ("llama-bench", FAKE_BENCH)):
        exe = tmp_path / name
        exe.write_text(text)
        exe.chmod(0o755)
    argv = ["bench", "--target", str(target), "--draft", str(draft), "--rounds", "1",
            "--max-tokens", "6", "--draft-lengths", "2", "--no-adaptive", "--physics-reps", "1",
            "--threads", "1", "--n-ctx", "512", "--no-warmup", "--peer", "llama.cpp",
            "--llama-cpp-bin", str(tmp_path), "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    modes = {m["mode"]: m for m in doc["modes"]}
    assert {"llama.cpp target", "llama.cpp draft-simple k=6", "llama.cpp ngram-simple",
            "llama.cpp ngram-mod"} <= set(modes)
    assert modes["llama.cpp ngram-mod"]["speedup"]["median"] == pytest.approx(1.5)
    curves = [n for n in doc["notes"] if n.startswith("pass cost by width")]
    assert len(curves) == 3 and "llama-bench" in curves[2] and "9: 172" in curves[2]
