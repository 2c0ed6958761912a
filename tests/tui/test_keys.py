"""Binding ids, the [keys] remap file, command palette entries."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette

from specchat.tui.keys import ACTIONS, load_keymap

from .conftest import ready, send, wait_for
from .fake_engine import FakeEngine


def test_load_keymap(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert load_keymap(path) == ({}, [])
    path.write_text(
        '[keys]\nregenerate = "f9"\n"prompt.send" = "ctrl+s"\nnope = "x"\ncancel = 3\n'
    )
    keymap, warnings = load_keymap(path)
    assert keymap == {"regenerate": "f9", "prompt.send": "ctrl+s"}
    assert len(warnings) == 2 and "nope" in warnings[0] and "cancel" in warnings[1]
    path.write_text("[keys\n")
    keymap, warnings = load_keymap(path)
    assert keymap == {} and "ignored" in warnings[0]


def test_keys_file_env_override(tmp_path: Path, monkeypatch) -> None:
    from specchat.tui.keys import keys_file

    monkeypatch.setenv("SPECCHAT_KEYS_FILE", str(tmp_path / "k.toml"))
    assert keys_file() == tmp_path / "k.toml"


async def test_remapped_binding_works(make_app) -> None:
    engine = FakeEngine()
    app = make_app(engine, keymap={"regenerate": "f9"})
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "q")
        await pilot.press("ctrl+r")  # no longer bound
        await pilot.pause(0.1)
        assert len(engine.calls) == 1
        await pilot.press("f9")
        await wait_for(pilot, lambda: screen.replies_finished == 2)


async def test_every_action_is_in_the_command_palette(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        commands = list(app.get_system_commands(screen))
        titles = {c.title for c in commands}
        assert {a.help for a in ACTIONS} <= titles
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"colour tokens")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.query_one("#chat-view").origin_mode)
