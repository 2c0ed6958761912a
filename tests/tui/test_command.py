"""`specchat chat`: flags are checked before the app opens (one line, exit 2)."""

from __future__ import annotations

import pytest

from specchat.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chat", "--target", "t.gguf", "--draft-max", "99"], "--draft-max"),
        (["chat", "--temperature", "-1"], "--temperature"),
        (["chat", "--pair", "no-such-pair"], "no-such-pair"),
    ],
)
def test_bad_flags_fail_before_the_app_opens(argv, message, capsys, monkeypatch) -> None:
    import specchat.tui

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the app must not start")

    monkeypatch.setattr(specchat.tui.SpecchatApp, "run", never)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("specchat: error:")


def test_chat_is_the_default_command(monkeypatch, tmp_path) -> None:
    import specchat.tui

    seen = []
    monkeypatch.setenv("SPECCHAT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPECCHAT_KEYS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setattr(specchat.tui.SpecchatApp, "run", lambda self: seen.append(self.loader))
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2  # a bad --config: one line
    assert main([]) == 0  # `specchat` alone opens the chat on the default pair
    assert seen[-1].initial_label().startswith("default pair ")
    assert main(["chat", "--target", "model.gguf", "--no-draft"]) == 0
    assert seen and seen[-1].initial_label() == "model model.gguf"
    assert (tmp_path / "history.sqlite3").exists()
