"""History across restarts, sidebar actions: new, switch, search, rename, delete, export."""

from __future__ import annotations

from textual.widgets import Input, OptionList

from specchat.store import ChatSettings, ChatStore, MessageStatus
from specchat.tui.screens import ChatSettingsScreen, ConfirmScreen, TextPromptScreen
from specchat.tui.widgets import MessageBox

from .conftest import ready, send, wait_for
from .fake_engine import FakeEngine, scripted


async def test_history_survives_restart(make_app) -> None:
    async with make_app().run_test() as pilot:
        await ready(pilot)
        await send(pilot, "remember me")
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        texts = [b.text for b in screen.query(MessageBox)]
        assert texts == ["remember me", "You said: remember me"]
        assert screen.query(MessageBox).last().stats is not None  # stats kept too
        await send(pilot, "and more")
        assert len(app.store.messages(screen.chat.id)) == 4


async def test_reply_interrupted_by_a_kill_is_kept_and_marked(make_app, db_path) -> None:
    store = ChatStore(db_path)
    chat = store.create_chat("crashed")
    store.add_message(chat.id, "user", "q")
    reply = store.begin_reply(chat.id)
    store.update_reply(reply.id, "half an ans", [("half an ans", "draft")])
    store.close()  # the app died here: status still 'streaming'
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        box = screen.query(MessageBox).last()
        assert box.text == "half an ans" and box.status is MessageStatus.INCOMPLETE
        assert "incomplete" in str(box.query_one(".message-header").render())


async def test_quitting_mid_reply_saves_partial_as_cancelled(make_app, db_path) -> None:
    engine = FakeEngine(reply=lambda m: scripted("one two three four"), pause_after=2)
    async with make_app(engine).run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "q", wait=False)
        await wait_for(pilot, lambda: engine.paused.is_set())
        await wait_for(pilot, lambda: screen.query(MessageBox).last().text == "one two")
    store = ChatStore(db_path)
    last = store.messages(store.list_chats()[0].id)[-1]
    assert (last.content, last.status) == ("one two", MessageStatus.CANCELLED)


async def test_new_switch_and_search_chats(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "apples")
        await pilot.press("ctrl+n")
        assert screen.chat is None and screen.query("#welcome")
        await send(pilot, "bananas")
        chat_list = screen.query_one("#chat-list", OptionList)
        assert [chat_list.get_option_at_index(i).prompt for i in range(2)] == ["bananas", "apples"]
        screen.query_one("#chat-search", Input).value = "app"
        await pilot.pause()
        assert chat_list.option_count == 1
        chat_list.focus()
        chat_list.highlighted = 0
        await pilot.press("enter")
        await pilot.pause()
        assert screen.chat.title == "apples"
        assert screen.query(MessageBox).first().text == "apples"


async def test_rename_chat(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "untitled")
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, TextPromptScreen))
        app.screen.query_one(Input).value = "My renamed chat"
        await pilot.press("enter")
        await pilot.pause()
        assert app.store.get_chat(screen.chat.id).title == "My renamed chat"
        assert screen.query_one("#chat-list", OptionList).get_option_at_index(0).prompt == (
            "My renamed chat"
        )


async def test_delete_chat_asks_first(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "keep me")
        await pilot.press("ctrl+n")
        await send(pilot, "delete me")
        await pilot.press("f8")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")  # no
        await pilot.pause()
        assert len(app.store.list_chats()) == 2
        await pilot.press("f8")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#yes")
        await wait_for(pilot, lambda: len(app.store.list_chats()) == 1)
        await pilot.pause()
        assert screen.chat.title == "keep me"


async def test_export_chat_to_markdown(make_app, tmp_path) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "export **this**")
        await pilot.press("ctrl+s")
        files = list((tmp_path / "exports").glob("*.md"))
        assert len(files) == 1
        text = files[0].read_text()
        assert text.startswith("# export **this**\n")
        assert "## You\n\nexport **this**" in text
        assert "## Assistant\n\nYou said: export **this**" in text
        assert "tok/s" in text and screen.chat is not None


async def test_chat_settings_saved_and_used(make_app) -> None:
    engine = FakeEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 50)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "first")
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatSettingsScreen))
        dialog = app.screen
        dialog.query_one("#system-prompt").text = "You are terse."
        dialog.query_one("#set-temperature", Input).value = "abc"
        dialog.action_save()
        await pilot.pause()
        assert "not a number" in str(dialog.query_one("#settings-error").render())
        dialog.query_one("#set-temperature", Input).value = "0.7"
        dialog.query_one("#set-seed", Input).value = "42"
        dialog.query_one("#set-draft_max", Input).value = "6"
        dialog.action_save()
        await wait_for(pilot, lambda: app.store.get_chat(screen.chat.id).settings.seed == 42)
        saved = app.store.get_chat(screen.chat.id).settings
        assert saved == ChatSettings(
            system_prompt="You are terse.", temperature=0.7, seed=42, draft_max=6
        )
        await send(pilot, "second")
        messages, settings, spec = engine.calls[-1]
        assert messages[0].content == "You are terse."
        assert (settings.temperature, settings.seed, spec.draft_max) == (0.7, 42, 6)


async def test_reopened_chat_shows_its_last_reply_stats(make_app) -> None:
    async with make_app().run_test() as pilot:
        await ready(pilot)
        await send(pilot, "measure me")
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        live = str(screen.query_one("#status-live").render())
        assert "100.0 tok/s" in live and "accepted 75% (3/4)" in live
