"""`specchat models pull` against the fake hub, through specchat.cli.main."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat import cli

from .fake_hub import FakeHub
from .helpers import sha


@pytest.fixture
def config(tmp_path: Path, gguf_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("models", "doctor"))
    path = tmp_path / "models.toml"
    path.write_text(
        "[pairs.mine]\n"
        'description = "fake hub pair"\n'
        f'target = {{ repo = "org/tiny-GGUF", file = "*Q4_K_M.gguf", '
        f'sha256 = "{sha(gguf_bytes)}" }}\n'
        'draft = { repo = "org/split-GGUF", file = "big-Q4_K_M-*-of-00002.gguf" }\n'
    )
    return path


def test_pull_then_list_then_offline(
    hub: FakeHub, config: Path, capsys: pytest.CaptureFixture[str], gguf_bytes: bytes
) -> None:
    assert cli.main(["--config", str(config), "models", "pull", "mine"]) == 0
    out = capsys.readouterr().out
    assert "tiny-Q4_K_M.gguf" in out and "big-Q4_K_M-00002-of-00002.gguf" in out
    assert "pair 'mine' is ready" in out
    assert cli.main(["--config", str(config), "models", "list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if " mine " in ln)
    assert line.split()[1:3] == ["yes/yes", f"{2 * len(gguf_bytes) / 1e6:.0f}M"]  # exact sizes
    hub.stop()
    assert cli.main(["--config", str(config), "models", "pull", "mine", "--offline"]) == 0


def test_pull_without_network_is_one_line(
    hub: FakeHub, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.stop()
    assert cli.main(["--config", str(config), "models", "pull", "mine"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("specchat: error: cannot reach")
