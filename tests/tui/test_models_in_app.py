"""Models inside the app: typing while the pair loads, download progress, the pair a chat
remembers, opening GGUF files, the context meter and the speculation line (fake engine)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from textual.widgets import Button, Checkbox, Input, Static

from specchat.engine.types import Message, Origin, Stats
from specchat.errors import DownloadError, SpecchatError, VocabMismatchError
from specchat.pair_check import PairReport
from specchat.store import ChatStore
from specchat.tui.loader import ModelFiles
from specchat.tui.screens.open_model import OpenModelScreen
from specchat.tui.screens.switch_pair import SwitchPairScreen
from specchat.tui.widgets.context_meter import ContextMeter, forecast, saved_seconds
from specchat.tui.widgets.download_progress import DownloadPanel, FileProgress
from specchat.tui.widgets.pending import PendingMessage
from specchat.tui.worker import BASELINE_PROMPT

from .conftest import main_screen, ready, send, wait_for
from .fake_engine import FakeEngine, FakeLoader, fake_info, model_info, scripted


def text_of(widget: Static) -> str:
    return str(widget.render())


# typing while the pair loads -----------------------------------------------------------------
async def test_message_typed_while_loading_is_sent_when_ready(make_app) -> None:
    engine = FakeEngine()
    # the target-alone timing waits for the pending message: it is not sent first
    loader = FakeLoader(engines={None: engine}, gate=threading.Event(), baseline_tokens=8)
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = main_screen(app)
        await wait_for(pilot, loader.waiting.is_set)
        await send(pilot, "hello while loading", wait=False)
        pending = screen.query_one(PendingMessage)
        assert pending.display and "hello while loading" in text_of(pending)
        assert engine.calls == [] and screen.query_one("#prompt").text == ""
        await send(pilot, "a second one", wait=False)  # one waits at a time: this one stays
        assert screen.query_one("#prompt").text == "a second one"
        assert screen.pending == "hello while loading"
        loader.gate.set()
        await wait_for(pilot, lambda: screen.replies_finished == 1)
        assert engine.calls[0][0][-1].content == "hello while loading"
        assert not pending.display


async def test_pending_message_shows_the_load_error_and_keeps_the_text(make_app) -> None:
    loader = FakeLoader(
        engines={None: SpecchatError("no such file x.gguf")}, gate=threading.Event()
    )
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = main_screen(app)
        await wait_for(pilot, loader.waiting.is_set)
        await send(pilot, "are you there", wait=False)
        loader.gate.set()
        await wait_for(pilot, lambda: screen.engine_state == "failed")
        await pilot.pause()
        pending = screen.query_one(PendingMessage)
        assert pending.has_class("-failed")
        assert "not sent" in text_of(pending) and "no such file x.gguf" in text_of(pending)
        assert screen.query_one("#prompt").text == "are you there"


# download progress ---------------------------------------------------------------------------
async def test_download_progress_per_file_and_cancel(make_app) -> None:
    loader = FakeLoader(gate=threading.Event(), download=("big-Q4_K_M.gguf", 8_000_000))
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = main_screen(app)
        panel = screen.query_one(DownloadPanel)
        await wait_for(pilot, lambda: panel.display and "big-Q4_K_M.gguf" in panel.files)
        row = panel.files["big-Q4_K_M.gguf"]
        # the fake download reports three quarters, then stalls until cancelled
        await wait_for(
            pilot,
            lambda: text_of(row.query_one(".download-numbers")).startswith("6.0 / 8.0 MB"),
            timeout=20,
        )
        numbers = text_of(row.query_one(".download-numbers"))
        assert "MB/s" in numbers and "left" in numbers
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen.engine_state == "failed")
        await pilot.pause()
        assert "cancelled" in text_of(panel.query_one(".download-title"))
        assert "resumes" in text_of(panel.query_one(".download-error"))
        assert isinstance(row, FileProgress)


async def test_checksum_error_is_shown_in_the_download_panel(make_app) -> None:
    error = DownloadError("checksum mismatch for big.gguf: expected sha256 1d96…, got 0000…")
    loader = FakeLoader(
        engines={None: error}, gate=threading.Event(), download=("big.gguf", 4_000_000)
    )
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = main_screen(app)
        panel = screen.query_one(DownloadPanel)
        await wait_for(pilot, lambda: "big.gguf" in panel.files)
        loader.gate.set()  # every byte arrives, then the checksum fails
        await wait_for(pilot, lambda: screen.engine_state == "failed")
        await pilot.pause()
        assert panel.display and "Download failed" in text_of(panel.query_one(".download-title"))
        assert "checksum mismatch for big.gguf" in text_of(panel.query_one(".download-error"))


async def test_no_network_is_shown_in_the_download_panel(make_app) -> None:
    error = DownloadError("cannot reach huggingface.co (no network?); run it again online")
    app = make_app(loader=FakeLoader(engines={None: error}))
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        panel = screen.query_one(DownloadPanel)
        assert panel.display and "cannot reach huggingface.co" in text_of(
            panel.query_one(".download-error")
        )


async def test_a_load_error_after_the_download_hides_the_panel(make_app) -> None:
    error = SpecchatError("cannot load GGUF (corrupt or unsupported file): big.gguf")
    loader = FakeLoader(
        engines={None: error}, gate=threading.Event(), download=("big.gguf", 4_000_000)
    )
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = main_screen(app)
        await wait_for(pilot, lambda: "big.gguf" in screen.query_one(DownloadPanel).files)
        loader.gate.set()
        await wait_for(pilot, lambda: screen.engine_state == "failed")
        await pilot.pause()
        assert not screen.query_one(DownloadPanel).display
        assert "cannot load GGUF" in text_of(screen.query_one("#engine-error"))


# a chat remembers its pair -------------------------------------------------------------------
async def test_new_chat_records_the_default_pair_by_name(make_app, db_path: Path) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "hi")
        assert screen.chat is not None
        assert app.store.get_chat(screen.chat.id).pair_name == "smollm2"


def seed_chat(db_path: Path, pair: str | None, target: str | None = None) -> None:
    store = ChatStore(db_path)
    chat = store.create_chat("old chat", pair, target_path=target)
    store.add_message(chat.id, "user", "earlier question")
    store.close()


async def test_chat_of_another_pair_offers_to_switch_and_switches(make_app, db_path) -> None:
    seed_chat(db_path, "gemma")
    other = FakeEngine(info_=fake_info("gemma-big", "gemma-small"))
    loader = FakeLoader(engines={None: FakeEngine(), "gemma": other})
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SwitchPairScreen))
        assert "pair gemma" in str(app.screen.query_one(".dialog-title").render())
        assert "pair smollm2 is loaded" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("s")
        screen = main_screen(app)
        await wait_for(pilot, lambda: loader.loaded == [None, "gemma"])
        await wait_for(pilot, lambda: screen.engine_state == "ready")
        assert screen.pair_name == "gemma"


async def test_chat_of_another_pair_can_continue_with_the_loaded_one(make_app, db_path) -> None:
    seed_chat(db_path, "gemma")
    loader = FakeLoader(engines={None: FakeEngine(), "gemma": FakeEngine()})
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SwitchPairScreen))
        await pilot.press("c")
        await pilot.pause()
        assert loader.loaded == [None]
        notes = [n.message for n in app._notifications]
        assert any("Continuing with pair smollm2" in n and "pair gemma" in n for n in notes)


# open GGUF files -----------------------------------------------------------------------------
def gguf_files(tmp_path: Path) -> ModelFiles:
    target, draft = tmp_path / "big.gguf", tmp_path / "small.gguf"
    target.write_bytes(b"GGUF")
    draft.write_bytes(b"GGUF")
    return ModelFiles(target, draft)


async def type_paths(pilot, files: ModelFiles) -> None:
    dialog = pilot.app.screen
    dialog.query_one("#target-path", Input).value = str(files.target)
    dialog.query_one("#draft-path", Input).value = str(files.draft or "")
    dialog.query_one("#draft-path", Input).focus()
    await pilot.press("enter")


async def test_open_gguf_shows_the_check_then_loads_and_the_chat_records_the_files(
    make_app, tmp_path: Path
) -> None:
    files = gguf_files(tmp_path)
    report = PairReport("(files)", ["pair (files)", "  vocab  same vocabulary: token-level"])
    loader = FakeLoader(engines={None: FakeEngine(), files: FakeEngine()}, reports={files: report})
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, OpenModelScreen))
        await type_paths(pilot, files)
        load = app.screen.query_one("#load", Button)
        await wait_for(pilot, lambda: not load.disabled)
        assert "same vocabulary" in text_of(app.screen.query_one("#check-report"))
        await pilot.click("#load")
        await wait_for(pilot, lambda: loader.loaded == [None, files])
        await wait_for(pilot, lambda: screen.engine_state == "ready")
        await send(pilot, "hi files")
        chat = app.store.get_chat(screen.chat.id)
        assert (chat.pair_name, chat.target_path) == (None, str(files.target))
        assert chat.draft_path == str(files.draft)


async def test_open_gguf_missing_file_gets_the_cli_error(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, OpenModelScreen))
        await type_paths(pilot, ModelFiles(tmp_path / "none.gguf"))
        report = app.screen.query_one("#check-report")
        assert f"model file not found: {tmp_path / 'none.gguf'}" in text_of(report)
        assert app.screen.query_one("#load", Button).disabled


async def test_open_gguf_vocabulary_mismatch_blocks_loading(make_app, tmp_path: Path) -> None:
    files = gguf_files(tmp_path)
    bad = PairReport(
        "(files)",
        ["pair (files)", "  vocab  different (vocab 49152 vs 151936)"],
        VocabMismatchError("draft small.gguf and target big.gguf do not share a vocabulary"),
    )
    app = make_app(loader=FakeLoader(reports={files: bad}))
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, OpenModelScreen))
        await type_paths(pilot, files)
        report = app.screen.query_one("#check-report")
        await wait_for(pilot, lambda: "do not share a vocabulary" in text_of(report))
        assert "different (vocab 49152 vs 151936)" in text_of(report)
        assert app.screen.query_one("#load", Button).disabled


async def test_open_gguf_with_cross_vocabulary_drafting(make_app, tmp_path: Path) -> None:
    files = gguf_files(tmp_path)
    crossed = ModelFiles(files.target, files.draft, cross_vocab=True)
    report = PairReport("(files)", ["  vocab  different (…): cross-vocabulary drafting is on"])
    loader = FakeLoader(
        engines={None: FakeEngine(), crossed: FakeEngine()}, reports={crossed: report}
    )
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, OpenModelScreen))
        app.screen.query_one("#cross-vocab", Checkbox).value = True
        await type_paths(pilot, files)
        load = app.screen.query_one("#load", Button)
        await wait_for(pilot, lambda: not load.disabled)
        await pilot.click("#load")
        await wait_for(pilot, lambda: loader.loaded == [None, crossed])


# context meter -------------------------------------------------------------------------------
def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def small_context_engine(n_ctx: int) -> FakeEngine:
    info = fake_info()
    return FakeEngine(info_=replace(info, target=replace(model_info("t", 24), n_ctx=n_ctx)))


async def test_context_meter_counts_the_chat_and_warns_which_turns_go(make_app) -> None:
    engine = small_context_engine(400)  # budget 400 - min(512, 100) = 300
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        meter = screen.query_one(ContextMeter)
        await send(pilot, "first question " + words(60))
        await wait_for(pilot, lambda: meter.forecast is not None)
        assert meter.forecast.n_ctx == 400 and not meter.forecast.dropped
        assert "/ 400 tokens" in text_of(meter.query_one("#context-text"))
        await send(pilot, "second " + words(100))
        await wait_for(pilot, lambda: meter.forecast is not None and meter.forecast.dropped)
        shown = text_of(meter.query_one("#context-text"))
        assert "leaves out the oldest" in shown and "“first question w0" in shown


def test_forecast_follows_the_engine_rule() -> None:
    def count(msgs) -> int:
        return sum(len(m.content.split()) for m in msgs) + 10

    chat = [Message("system", "be brief")]
    for i in range(4):
        chat += [Message("user", f"q{i} " + words(20)), Message("assistant", words(20))]
    few = forecast(chat, count, n_ctx=1000, max_tokens=100)
    assert (few.used, few.budget, few.dropped) == (count(chat), 900, ())
    full = forecast(chat, count, n_ctx=200, max_tokens=100)  # budget 150, cut to 75
    assert full.dropped[0].startswith("q0") and len(full.dropped) == 6
    assert full.warn


# speculation saved or cost -------------------------------------------------------------------
def test_saved_seconds_against_the_target_alone() -> None:
    fast = Stats(generated_tokens=100, tokens_per_second=50.0)
    slow = Stats(generated_tokens=100, tokens_per_second=10.0)
    assert saved_seconds([fast], baseline=25.0) == (4.0 - 2.0, 1)
    assert saved_seconds([slow], baseline=25.0) == (4.0 - 10.0, 1)


async def test_speed_line_compares_the_chat_with_the_target_alone(make_app) -> None:
    def reply(messages) -> list[tuple[str, Origin]]:
        if messages[-1].content == BASELINE_PROMPT:
            return scripted(words(12), accepted_per_pass=0)  # one token per target pass
        return scripted(words(40), accepted_per_pass=3)  # four tokens per target pass

    engine = FakeEngine(reply=reply)
    loader = FakeLoader(engines={None: engine}, baseline_tokens=12)
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        line = screen.query_one("#speed-line")
        await wait_for(pilot, lambda: "no reply in this chat yet" in text_of(line))
        assert "25.0 tok/s" in text_of(line)  # 1 token / 40 ms pass
        await send(pilot, "go")
        await wait_for(pilot, lambda: "saved" in text_of(line))
        assert engine.calls[0][2].mode.value == "none"  # the baseline ran the target alone
        assert engine.spec.mode.value != "none"  # and the pair's settings came back
        # 40 tokens: 1.6 s alone at 25 tok/s, 0.4 s at 100 tok/s
        assert "saved 1.2 s in this chat (1 reply)" in text_of(line)
