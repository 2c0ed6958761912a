"""Search results show a snippet of the message that matched, the matched words highlighted;
choosing a result still jumps to that message (fake engine)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Input, OptionList

from specchat.tui.widgets import ChatView, MessageBox
from specchat.tui.widgets.sidebar import MATCH_STYLE, SNIPPET_LENGTH, snippet

from .conftest import ready, wait_for

LONG = (
    "Our first stop was the harbour of Stone Town.\n\nWe sailed to Zanzibar last spring, and"
    " it rained every afternoon while we waited for the ferry back to the mainland."
)


def highlighted(content: Content) -> list[str]:
    """The parts of `content` shown as matches."""
    return [content.plain[s.start : s.end] for s in content.spans if s.style == MATCH_STYLE]


def test_snippet_is_short_flat_and_marks_each_match() -> None:
    found = snippet(LONG, "zanzibar")
    assert found is not None
    assert found.plain.startswith("…") and found.plain.endswith("…")  # text left out both sides
    assert "\n" not in found.plain and "Zanzibar last spring" in found.plain
    assert len(found.plain) <= SNIPPET_LENGTH + 2
    assert highlighted(found) == ["Zanzibar"]
    assert snippet("short one", "one").plain == "short one"  # type: ignore[union-attr]
    twice = snippet("to be or not to be", "TO BE")
    assert twice is not None and highlighted(twice) == ["to be", "to be"]
    assert snippet(LONG, "absent") is None


async def test_search_results_show_a_snippet_and_jump_to_the_message(make_app) -> None:
    app = make_app()
    store = app.store
    found = store.create_chat("Travel talk")
    for i in range(40):
        text = LONG if i == 5 else f"filler message {i}"
        store.add_message(found.id, "user" if i % 2 == 0 else "assistant", text)
    titled = store.create_chat("Zanzibar plans")  # the title matches, no message does
    store.add_message(titled.id, "user", "nothing about the island here")
    other = store.create_chat("Newer chat")
    store.add_message(other.id, "user", "unrelated")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        chat_list = screen.query_one("#chat-list", OptionList)
        assert chat_list.get_option_at_index(0).prompt == "Newer chat"  # no search: titles
        await pilot.press("ctrl+f")
        screen.query_one("#chat-search", Input).value = "zanzibar"
        await pilot.pause()
        prompts = {
            chat_list.get_option_at_index(i).id: chat_list.get_option_at_index(i).prompt
            for i in range(chat_list.option_count)
        }
        assert set(prompts) == {str(found.id), str(titled.id)}
        result = prompts[str(found.id)]
        assert isinstance(result, Content)
        title, excerpt = result.plain.split("\n")
        assert title == "Travel talk" and "Zanzibar last spring" in excerpt
        assert highlighted(result) == ["Zanzibar"]
        title_only = prompts[str(titled.id)]
        assert isinstance(title_only, Content) and title_only.plain == "Zanzibar plans"
        assert highlighted(title_only) == ["Zanzibar"]
        assert chat_list.virtual_size.height > 2  # the title, the snippet below it; a title
        index = next(i for i in range(2) if chat_list.get_option_at_index(i).id == str(found.id))
        chat_list.focus()
        chat_list.highlighted = index
        await pilot.press("enter")
        target = store.messages(found.id)[5].id
        await wait_for(pilot, lambda: isinstance(app.focused, MessageBox))
        await pilot.pause()
        assert app.focused.message_id == target  # type: ignore[union-attr]
        assert screen.query_one(ChatView).box(target).region.height > 0  # type: ignore[union-attr]
        # clearing the search shows the plain titles again
        screen.query_one("#chat-search", Input).value = ""
        await pilot.pause()
        titles = [chat_list.get_option_at_index(i).prompt for i in range(chat_list.option_count)]
        assert len(titles) == 3 and all(isinstance(t, str) for t in titles)
