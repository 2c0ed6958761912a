"""Top-level dispatch: `specchat` alone and `specchat --pair NAME` open the chat."""

from __future__ import annotations

import pytest

from specchat import cli
from specchat.commands import chat


@pytest.mark.parametrize(
    "argv, pair",
    [([], None), (["--pair", "demo"], "demo"), (["--config", "x.toml", "--pair", "demo"], "demo")],
)
def test_no_command_means_chat(monkeypatch, argv, pair):
    seen = {}

    def fake_run(args) -> int:
        seen["pair"] = args.pair
        return 0

    monkeypatch.setattr(chat, "run", fake_run)
    assert cli.main(argv) == 0
    assert "pair" in seen and seen["pair"] == pair


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("specchat ")
