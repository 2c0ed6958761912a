"""A chat made with GGUF files opened in the app (F9) keeps their cross-vocabulary choice:
reopening it and switching back to its pair loads the files with the same choice, whatever
the recently-opened list says (fake engine)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from textual.widgets import Button, Checkbox

from specchat.pair_check import PairReport
from specchat.store import ChatStore
from specchat.store.migrations import MIGRATIONS, statements
from specchat.tui.loader import ModelFiles
from specchat.tui.screens.open_model import OpenModelScreen
from specchat.tui.screens.switch_pair import SwitchPairScreen

from .conftest import main_screen, ready, send, wait_for
from .fake_engine import FakeEngine, FakeLoader
from .test_models_in_app import gguf_files, type_paths

CROSSED_REPORT = PairReport("(files)", ["  vocab  different (…): cross-vocabulary drafting is on"])


def crossed_loader(crossed: ModelFiles, recent: list[ModelFiles] | None = None) -> FakeLoader:
    return FakeLoader(
        engines={None: FakeEngine(), crossed: FakeEngine()},
        reports={crossed: CROSSED_REPORT},
        recent_files=list(recent or []),
    )


async def open_crossed(pilot, loader: FakeLoader, files: ModelFiles) -> None:
    """F9, the paths, cross-vocabulary ticked, Check, Load; waits for the load."""
    app = pilot.app
    await pilot.press("f9")
    await wait_for(pilot, lambda: isinstance(app.screen, OpenModelScreen))
    app.screen.query_one("#cross-vocab", Checkbox).value = True
    await type_paths(pilot, files)
    load = app.screen.query_one("#load", Button)
    await wait_for(pilot, lambda: not load.disabled)
    await pilot.click("#load")
    screen = main_screen(app)
    await wait_for(pilot, lambda: loader.loaded[-1:] == [crossed_of(files)])
    await wait_for(pilot, lambda: screen.engine_state == "ready")


def crossed_of(files: ModelFiles) -> ModelFiles:
    return ModelFiles(files.target, files.draft, cross_vocab=True)


async def switch_back(make_app, loader: FakeLoader) -> None:
    """A new app (the default pair loaded) opens the chat, which offers its pair: s switches."""
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SwitchPairScreen))
        await pilot.press("s")
        await wait_for(pilot, lambda: len(loader.loaded) == 2)
        await pilot.pause()


async def test_a_new_chat_made_with_crossed_files_reloads_them_crossed(
    make_app, tmp_path: Path
) -> None:
    files = gguf_files(tmp_path)
    crossed = crossed_of(files)
    loader = crossed_loader(crossed)
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await open_crossed(pilot, loader, files)
        await send(pilot, "hi across vocabularies")
        chat = app.store.get_chat(screen.chat.id)
        assert (chat.target_path, chat.cross_vocab) == (str(files.target), True)
    # later the same files were opened without cross-vocabulary drafting (the recent list says
    # so): the chat still reloads them with its own choice
    again = crossed_loader(crossed, recent=[files])
    await switch_back(make_app, again)
    assert again.loaded == [None, crossed]
    assert again.loaded[-1].cross_vocab


async def test_an_empty_chat_takes_the_crossed_files_opened_for_it(
    make_app, tmp_path: Path
) -> None:
    files = gguf_files(tmp_path)
    crossed = crossed_of(files)
    loader = crossed_loader(crossed)
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await screen.show_welcome()
        screen._ensure_chat("empty for now")  # a chat with no message yet (settings, say)
        await open_crossed(pilot, loader, files)
        chat = app.store.get_chat(screen.chat.id)
        assert (chat.target_path, chat.draft_path) == (str(files.target), str(files.draft))
        assert chat.cross_vocab is True
        await send(pilot, "now a message")
    again = crossed_loader(crossed)  # an empty recent list
    await switch_back(make_app, again)
    assert again.loaded == [None, crossed]


async def test_files_opened_without_cross_vocabulary_stay_so(
    make_app, db_path: Path, tmp_path: Path
) -> None:
    files = gguf_files(tmp_path)
    store = ChatStore(db_path)
    chat = store.create_chat("plain", None, None, str(files.target), str(files.draft), False)
    store.add_message(chat.id, "user", "same vocabulary")
    store.close()
    loader = FakeLoader(
        engines={None: FakeEngine(), files: FakeEngine()}, recent_files=[crossed_of(files)]
    )
    await switch_back(make_app, loader)
    assert loader.loaded == [None, files]
    assert not loader.loaded[-1].cross_vocab


def old_history(path: Path, files: ModelFiles) -> None:
    """A history file of schema v4 (before the choice was saved), with one chat of files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    for version, script in enumerate(MIGRATIONS[:4], start=1):
        for statement in statements(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    conn.execute(
        "INSERT INTO chats (title, created_at, updated_at, target_path, draft_path)"
        " VALUES ('old', 1, 1, ?, ?)",
        (str(files.target), str(files.draft)),
    )
    conn.execute(
        "INSERT INTO messages (chat_id, role, content, created_at) VALUES (1, 'user', 'old', 1)"
    )
    conn.commit()
    conn.close()


async def test_an_old_history_opens_and_its_chats_use_the_recent_list(
    make_app, db_path: Path, tmp_path: Path
) -> None:
    files = gguf_files(tmp_path)
    old_history(db_path, files)
    store = ChatStore(db_path)
    assert store.schema_version == len(MIGRATIONS)
    assert store.get_chat(1).cross_vocab is None  # not known: never saved
    store.close()
    crossed = crossed_of(files)
    loader = crossed_loader(crossed, recent=[crossed])
    await switch_back(make_app, loader)
    assert loader.loaded == [None, crossed]
