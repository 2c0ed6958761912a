"""Reading and reusing replies: folded thinking, copying code blocks, continue, regenerate
variants, search into message contents."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from textual.widgets import Input, Markdown, OptionList
from textual.widgets.markdown import MarkdownFence

from specchat.engine.types import GenerationSettings, Message
from specchat.store import MessageStatus
from specchat.tui import clipboard
from specchat.tui.widgets import ChatView, MessageBox
from specchat.tui.widgets.thinking import ThinkingBlock, split_thinking

from .conftest import ready, send, wait_for
from .fake_engine import CODE_REPLY, FakeEngine, FakeLoader, scripted, thinking_reply

THOUGHT = "The user greets me. I should greet back, briefly."
ANSWER = "Hello! How can I help?"


def notices(app: object) -> list[str]:
    return [n.message for n in app._notifications]  # type: ignore[attr-defined]


def test_split_thinking_shapes() -> None:
    assert split_thinking("<think>\nhmm\n</think>\n\nHi").thinking == "hmm"
    assert split_thinking("<think>\nhmm\n</think>\n\nHi").answer == "Hi"
    opened = split_thinking("hmm, let me see\n</think>\nHi")  # the template opened <think>
    assert (opened.thinking, opened.answer) == ("hmm, let me see", "Hi")
    still = split_thinking("<think>\nhmm")
    assert still.open and still.answer == ""
    assert split_thinking("<thi").pending  # maybe a tag: nothing shown yet
    assert split_thinking("Plain answer").thinking is None
    assert split_thinking("a <think> b </think> c").thinking is None  # not at the start


async def test_thinking_is_folded_counted_and_not_sent_back(make_app) -> None:
    engine = FakeEngine(reply=lambda m: scripted(thinking_reply(THOUGHT, ANSWER)))
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "hi")
        box = screen.query(MessageBox).last()
        block = box.query_one(ThinkingBlock)
        assert block.display and block.collapsed  # folded by default
        # the thinking's tokens: every token up to the one completing </think>
        n_think = len(scripted("<think>\n" + THOUGHT + "\n</think>"))
        assert box.thinking_tokens == n_think
        assert block.title.startswith(f"Thought ({n_think} tokens, ")
        assert block.title.endswith(" s)")
        body = box.query_one(".message-body", Markdown)
        assert body.source == ANSWER  # the answer below, without the thinking
        stats = app.store.messages(screen.chat.id)[-1].stats
        assert stats["thinking_tokens"] == n_think and stats["thinking_ms"] > 0
        block.collapsed = False  # expandable
        await pilot.pause()
        assert THOUGHT in str(block.query_one(".thinking-text").render())
        view = screen.query_one(ChatView)  # mounted anew (as a long chat does): still unfolded
        await view.show_messages(app.store.messages(screen.chat.id))
        await pilot.pause()
        again = screen.query(MessageBox).last()
        assert again is not box and not again.query_one(ThinkingBlock).collapsed
        await send(pilot, "again")
        sent = engine.calls[1][0]
        assert [m.content for m in sent if m.role == "assistant"] == [ANSWER]


async def test_thinking_streams_folded_with_a_live_count(make_app) -> None:
    engine = FakeEngine(reply=lambda m: scripted(thinking_reply(THOUGHT, ANSWER)), pause_after=6)
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "hi", wait=False)
        await wait_for(pilot, engine.paused.is_set)
        box = screen.query(MessageBox).last()
        await wait_for(pilot, lambda: box.thinking_tokens == 6)
        block = box.query_one(ThinkingBlock)
        assert block.collapsed and block.title == "Thinking… (6 tokens)"
        assert box.query_one(".message-body", Markdown).source == ""  # no answer yet
        engine.resume.set()
        await wait_for(pilot, lambda: screen.replies_finished == 1)
        await pilot.pause()
        assert block.title.startswith("Thought (") and box.text.endswith(ANSWER)


async def test_reply_starting_inside_thinking_is_folded_too(make_app) -> None:
    text = thinking_reply(THOUGHT, ANSWER, opened_by_template=True)
    app = make_app(FakeEngine(reply=lambda m: scripted(text)))
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "hi")
        box = screen.query(MessageBox).last()
        assert box.query_one(ThinkingBlock).display
        assert box.query_one(".message-body", Markdown).source == ANSWER
        assert box.thinking_tokens == len(scripted("\n" + THOUGHT + "\n</think>"))
    # reopened from the history: folded again, with the saved count
    app = make_app()
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        box = screen.query(MessageBox).last()
        block = box.query_one(ThinkingBlock)
        assert block.display and block.collapsed and "tokens" in block.title


@pytest.fixture
def fake_clipboard(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A clipboard tool that works: what it received."""
    got: list[str] = []

    def run(command: tuple[str, ...], text: str) -> bool:
        got.append(text)
        return True

    monkeypatch.setattr(clipboard, "available_tools", lambda env=None: [("fakeclip",)])
    monkeypatch.setattr(clipboard, "run_tool", run)
    return got


async def test_copy_one_code_block_by_key_or_click(make_app, fake_clipboard) -> None:
    app = make_app(FakeEngine(reply=lambda m: scripted(CODE_REPLY)))
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "show code")
        box = screen.query(MessageBox).last()
        box.focus()
        await pilot.press("1")
        assert fake_clipboard == ["print('hello')"]
        assert notices(app)[-1] == "Code block 1 copied to the clipboard (fakeclip)"
        await pilot.press("y")  # the last block
        assert fake_clipboard[-1] == "echo hello"
        await pilot.press("3")
        assert len(fake_clipboard) == 2 and "has 2 code block(s)" in notices(app)[-1]
        fences = list(box.query(MarkdownFence))
        await pilot.click(fences[1])
        assert fake_clipboard[-1] == "echo hello"
        assert notices(app)[-1] == "Code block 2 copied to the clipboard (fakeclip)"


async def test_copy_says_so_when_nothing_was_copied(make_app, monkeypatch) -> None:
    monkeypatch.setattr(clipboard, "available_tools", lambda env=None: [("brokenclip",)])
    monkeypatch.setattr(clipboard, "run_tool", lambda command, text: False)
    app = make_app(FakeEngine(reply=lambda m: scripted(CODE_REPLY)))
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "show code")
        screen.query(MessageBox).last().focus()
        await pilot.press("1")
        message = notices(app)[-1]
        assert message.startswith("Nothing was copied") and "copied to" not in message
        assert list(app._notifications)[-1].severity == "error"  # type: ignore[attr-defined]


def test_osc52_only_is_not_called_copied() -> None:
    class Terminal:
        is_headless = False

        def __init__(self) -> None:
            self.sent: list[str] = []

        def copy_to_clipboard(self, text: str) -> None:
            self.sent.append(text)

    app = Terminal()
    result = clipboard.copy_text(app, "x", "Code block 1", tools=[])  # type: ignore[arg-type]
    assert app.sent == ["x"] and result.ok
    assert result.message.startswith("Code block 1 sent to the terminal clipboard (OSC 52)")
    assert "copied" not in result.message.split(";")[0]


def long_script(messages: Sequence[Message]) -> list:
    return scripted("one two three four five six seven eight nine ten")


async def test_continue_a_reply_stopped_at_max_tokens(make_app) -> None:
    engine = FakeEngine(reply=long_script)
    loader = FakeLoader(engines={None: engine}, generation=GenerationSettings(max_tokens=6))
    app = make_app(loader=loader)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "count")
        box = screen.query(MessageBox).last()
        assert box.text == "one two three four five six"
        assert "stopped at max tokens" in str(box.query_one(".message-header").render())
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: screen.replies_finished == 2)
        await pilot.pause()
        full = "one two three four five six seven eight nine ten"
        assert engine.continued == ["one two three four five six"]
        sent = engine.calls[-1][0]
        assert [m.role for m in sent] == ["user"]  # the partial reply goes as `partial`
        assert box.text == full and len(screen.query(MessageBox)) == 2
        last = app.store.messages(screen.chat.id)[-1]
        assert last.content == full and last.status is MessageStatus.COMPLETE
        assert last.stats["finish_reason"] == "stop"
        assert "max tokens" not in str(box.query_one(".message-header").render())


async def test_regenerate_keeps_the_old_reply_to_flip_back_to(make_app) -> None:
    answers = iter(["first answer", "second answer", "third answer", "next answer"])
    engine = FakeEngine(reply=lambda m: scripted(next(answers)))
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await ready(pilot)
        await send(pilot, "q")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: screen.replies_finished == 2)
        await pilot.pause()
        box = screen.query(MessageBox).last()
        assert box.text == "second answer" and box.variant == (2, 2)
        assert "2/2" in str(box.query_one(".message-header").render())
        await pilot.press("alt+left")
        await pilot.pause()
        box = screen.query(MessageBox).last()
        assert box.text == "first answer" and box.variant == (1, 2)
        assert [m.content for m in app.store.messages(screen.chat.id)][-1] == "first answer"
        await pilot.press("alt+left")  # already the first
        assert "first version" in notices(app)[-1]
        await pilot.press("alt+right")
        await pilot.pause()
        assert screen.query(MessageBox).last().text == "second answer"
        await pilot.press("alt+left")
        await pilot.pause()
        await send(pilot, "thanks")  # moving on keeps the reply shown, drops the others
        assert app.store.variant_positions(screen.chat.id) == {}
        sent = engine.calls[-1][0]
        assert [m.content for m in sent] == ["q", "first answer", "thanks"]
        assert all(b.variant is None for b in screen.query(MessageBox))


async def test_search_finds_words_in_messages_and_jumps_to_it(make_app) -> None:
    app = make_app()
    store = app.store
    found = store.create_chat("Old talk")
    for i in range(120):
        text = "the rare word zanzibar" if i == 3 else f"filler message {i}"
        store.add_message(found.id, "user" if i % 2 == 0 else "assistant", text)
    other = store.create_chat("Newer chat")
    store.add_message(other.id, "user", "nothing here")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ready(pilot)
        assert screen.chat.id == other.id
        await pilot.press("ctrl+f")
        search = screen.query_one("#chat-search", Input)
        search.value = "Zanzibar"
        await pilot.pause()
        chat_list = screen.query_one("#chat-list", OptionList)
        assert [chat_list.get_option_at_index(i).id for i in range(chat_list.option_count)] == [
            str(found.id)
        ]
        chat_list.focus()
        chat_list.highlighted = 0
        await pilot.press("enter")
        target = store.messages(found.id)[3].id
        await wait_for(pilot, lambda: isinstance(app.focused, MessageBox))
        await pilot.pause()
        assert app.focused.message_id == target  # type: ignore[union-attr]
        view = screen.query_one(ChatView)
        assert view.box(target) is not None and view.box(target).region.height > 0
