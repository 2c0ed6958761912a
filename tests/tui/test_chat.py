"""Sending, streaming, cancel, regenerate, edit & resend, copy."""

from __future__ import annotations

from textual.widgets import Label

from specchat.store import MessageStatus
from specchat.tui.widgets import MessageBox

from .conftest import ready, send, wait_for
from .fake_engine import FakeEngine, scripted


async def test_send_streams_reply_and_saves_it(make_app) -> None:
    engine = FakeEngine(token_delay=0.002)
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "hello there")
        boxes = screen.query(MessageBox)
        assert [b.role for b in boxes] == ["user", "assistant"]
        assert boxes[1].text == "You said: hello there"
        assert screen.query_one("#prompt").text == ""
        assert engine.calls[0][0][-1].content == "hello there"
        chat = app.store.list_chats()[0]
        assert chat.title == "hello there"
        stored = app.store.messages(chat.id)
        assert [(m.role, m.content, m.status) for m in stored] == [
            ("user", "hello there", MessageStatus.COMPLETE),
            ("assistant", "You said: hello there", MessageStatus.COMPLETE),
        ]
        assert stored[1].stats is not None and stored[1].stats["generated_tokens"] == 4


async def test_shift_enter_and_ctrl_j_insert_newlines(make_app) -> None:
    engine = FakeEngine()
    async with make_app(engine).run_test() as pilot:
        screen = await ready(pilot)
        await pilot.press("a", "ctrl+j", "b", "shift+enter", "c")
        assert screen.query_one("#prompt").text == "a\nb\nc"
        assert engine.calls == []
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.replies_finished > 0)
        assert engine.calls[0][0][-1].content == "a\nb\nc"


async def test_cancel_keeps_partial_reply_marked_cancelled(make_app) -> None:
    engine = FakeEngine(reply=lambda m: scripted("one two three four five six"), pause_after=3)
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "count", wait=False)
        await wait_for(pilot, lambda: engine.paused.is_set())
        box = screen.query(MessageBox).last()
        await wait_for(pilot, lambda: box.text == "one two three")
        # saved while streaming, before the reply ends
        partial = app.store.messages(screen.chat.id)[-1]
        assert (partial.content, partial.status) == ("one two three", MessageStatus.STREAMING)
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen.replies_finished > 0)
        report = screen.last_report
        assert report is not None and report.status is MessageStatus.CANCELLED
        assert box.text == "one two three"
        assert "cancelled" in str(box.query_one(".message-header").render())
        stored = app.store.messages(screen.chat.id)[-1]
        assert (stored.content, stored.status) == ("one two three", MessageStatus.CANCELLED)
        assert stored.stats["finish_reason"] == "cancelled"


async def test_regenerate_replaces_last_reply(make_app) -> None:
    answers = iter(["first answer", "second answer"])
    engine = FakeEngine(reply=lambda m: scripted(next(answers)))
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "question")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: screen.replies_finished == 2)
        await pilot.pause()
        assert [b.text for b in screen.query(MessageBox)] == ["question", "second answer"]
        assert [m.content for m in app.store.messages(screen.chat.id)] == [
            "question",
            "second answer",
        ]
        # the engine was sent the same conversation both times, without the old reply
        assert engine.calls[0][0] == engine.calls[1][0]


async def test_edit_and_resend_last_prompt(make_app) -> None:
    engine = FakeEngine()
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "frist try")
        await pilot.press("ctrl+g")
        prompt = screen.query_one("#prompt")
        assert prompt.text == "frist try"
        assert "Editing" in str(prompt.border_subtitle)
        prompt.text = "first try"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.replies_finished == 2)
        await pilot.pause()
        assert [b.text for b in screen.query(MessageBox)] == ["first try", "You said: first try"]
        assert [m.content for m in app.store.messages(screen.chat.id)] == [
            "first try",
            "You said: first try",
        ]


async def test_copy_message_and_last_reply(make_app) -> None:
    app = make_app(FakeEngine())
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "copy me")
        await pilot.press("ctrl+t")
        assert copied == ["You said: copy me"]
        screen.query(MessageBox).first().focus()
        await pilot.press("c")
        assert copied[-1] == "copy me"


async def test_multi_turn_sends_whole_conversation_with_system_prompt(make_app) -> None:
    from specchat.store import ChatSettings

    engine = FakeEngine()
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "one")
        app.store.update_chat_settings(screen.chat.id, ChatSettings(system_prompt="Be brief."))
        await send(pilot, "two")
        roles = [(m.role, m.content) for m in engine.calls[1][0]]
        assert roles == [
            ("system", "Be brief."),
            ("user", "one"),
            ("assistant", "You said: one"),
            ("user", "two"),
        ]


async def test_engine_notices_and_dropped_turns_shown_on_message(make_app) -> None:
    engine = FakeEngine(notices=("speculation switched off",), dropped_turns=2)
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "long chat")
        notices = str(screen.query(MessageBox).last().query_one(".message-notices").render())
        assert "speculation switched off" in notices
        assert "2 oldest turn(s) left out" in notices


async def test_user_line_breaks_are_kept(make_app) -> None:
    async with make_app().run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "line one\nline two")
        paragraph = screen.query(MessageBox).first().query_one("MarkdownParagraph")
        assert str(paragraph.render()).splitlines() == ["line one", "line two"]
        reply = screen.query(MessageBox).last().query_one("MarkdownParagraph")
        assert "\n" not in str(reply.render())  # replies: CommonMark soft breaks


async def test_view_follows_the_stream_unless_scrolled_up(make_app) -> None:
    long = "\n\n".join(f"Paragraph {i} of a long answer." for i in range(40))
    engine = FakeEngine(reply=lambda m: scripted(long), pause_after=60)
    async with make_app(engine).run_test(size=(100, 30)) as pilot:
        screen = await ready(pilot)
        view = screen.query_one("#chat-view")
        await send(pilot, "long please", wait=False)
        await wait_for(pilot, lambda: engine.paused.is_set())
        await wait_for(pilot, lambda: view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y)
        view.scroll_home(animate=False)  # the user scrolls up to read
        await pilot.pause()
        engine.resume.set()
        await wait_for(pilot, lambda: screen.replies_finished > 0)
        await pilot.pause()
        assert view.scroll_y == 0 < view.max_scroll_y  # left where the user put it
        engine.pause_after = None
        await send(pilot, "again")  # sending follows the new reply again
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y


async def test_reply_cut_by_max_tokens_says_so(make_app) -> None:
    from specchat.store import ChatSettings

    app = make_app(FakeEngine(reply=lambda m: scripted("a b c d e f")))
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "one")
        assert "max tokens" not in str(screen.query(MessageBox).last().query_one(Label).render())
        app.store.update_chat_settings(screen.chat.id, ChatSettings(max_tokens=3))
        await send(pilot, "two")
        box = screen.query(MessageBox).last()
        assert box.text == "a b c" and box.stats["finish_reason"] == "length"
        assert "stopped at max tokens" in str(box.query_one(Label).render())
