"""Pieces behind the model views: the pair a chat records (schema v3), the recent GGUF list,
labels, and the open-model dialog's recent list."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from textual.widgets import OptionList

from specchat.cli import build_parser
from specchat.commands.model_args import pair_request
from specchat.pair_check import PairReport
from specchat.store import ChatStore
from specchat.store.migrations import MIGRATIONS, statements
from specchat.tui.loader import RECENT_MAX, CliLoader, ModelFiles, ref_label
from specchat.tui.screens.open_model import OpenModelScreen
from specchat.tui.widgets.download_progress import progress_line

from .conftest import ready, wait_for
from .fake_engine import FakeLoader


def test_a_v2_history_gains_the_pair_files_and_keeps_its_chats(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    for version, script in enumerate(MIGRATIONS[:2], 1):
        for statement in statements(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    conn.execute(
        "INSERT INTO chats (title, created_at, updated_at, pair_name) VALUES ('old', 1, 1, 'demo')"
    )
    conn.commit()
    conn.close()
    store = ChatStore(path)
    (old,) = store.list_chats()
    assert (old.pair_name, old.target_path, old.draft_path) == ("demo", None, None)
    chat = store.create_chat("files", None, target_path="/m/t.gguf", draft_path="/m/d.gguf")
    again = store.get_chat(chat.id)
    assert again is not None and (again.target_path, again.draft_path) == ("/m/t.gguf", "/m/d.gguf")
    store.set_chat_pair(chat.id, "demo")
    again = store.get_chat(chat.id)
    assert again is not None and (again.pair_name, again.target_path) == ("demo", None)
    store.close()


def test_recent_files_newest_first_deduplicated_and_bounded(tmp_path: Path) -> None:
    request = pair_request(build_parser().parse_args(["chat"]))
    loader = CliLoader(request, recent_file=tmp_path / "r.json")
    assert loader.recent() == []
    pairs = [ModelFiles(Path(f"/m/t{i}.gguf"), Path("/m/d.gguf")) for i in range(RECENT_MAX + 2)]
    for files in pairs:
        loader._remember(files)
    loader._remember(pairs[3])
    recent = loader.recent()
    assert recent[0] == pairs[3] and len(recent) == RECENT_MAX
    assert recent.count(pairs[3]) == 1
    (tmp_path / "r.json").write_text("{not json")
    assert loader.recent() == []  # an unreadable list starts over


def test_labels() -> None:
    assert ref_label("demo") == "pair demo"
    assert ref_label(None) == "the default pair"
    files = ModelFiles(Path("/m/big.gguf"), Path("/m/small.gguf"))
    assert ref_label(files) == "model big.gguf + small.gguf"
    assert ModelFiles(Path("/m/big.gguf")).label == "model big.gguf"
    assert (
        progress_line(2_100_000, 6_000_000, 1_500_000, 2.6) == "2.1 / 6.0 MB · 1.5 MB/s · 0:03 left"
    )
    assert progress_line(900_000, 1_200_000_000, 0, None) == "900.0 kB / 1.2 GB · – /s · – left"
    assert progress_line(5, 5, 1.0, 0.0) == "5 / 5 B · done"
    stalled = progress_line(2_100_000, 6_000_000, 1e6, 3.9, idle=12.0)
    assert stalled == "2.1 / 6.0 MB · stalled 0:12 (Esc cancels)"
    assert "left" in progress_line(2_100_000, 6_000_000, 1e6, 3.9, idle=4.0)


async def test_a_recent_pair_fills_the_paths_and_is_checked(make_app, tmp_path: Path) -> None:
    files = ModelFiles(tmp_path / "t.gguf", tmp_path / "d.gguf")
    files.target.write_bytes(b"GGUF")
    assert files.draft is not None
    files.draft.write_bytes(b"GGUF")
    report = PairReport("(files)", ["pair (files)", "  vocab  same vocabulary: from recent"])
    loader = FakeLoader(recent_files=[files], reports={files: report})
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, OpenModelScreen))
        recent = app.screen.query_one("#recent-list", OptionList)
        recent.focus()
        recent.highlighted = 0
        await pilot.press("enter")
        shown = app.screen.query_one("#check-report")
        await wait_for(pilot, lambda: "from recent" in str(shown.render()))
        assert app.screen.query_one("#target-path").value == str(files.target)
