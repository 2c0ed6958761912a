"""A streamed reply's Markdown body (LiveMarkdown) ends exactly as the whole text shown at once;
an open code block is plain until it closes; a growing list is updated in place; the status
bar's live figures, redrawn at most a few times a second, end exact."""

from __future__ import annotations

import re

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Markdown, Static

from specchat.engine.types import Stats
from specchat.stats_format import live_line
from specchat.tui.widgets.live_markdown import (
    BodyStream,
    LiveFence,
    LiveMarkdown,
    ends_in_open_fence,
)
from specchat.tui.widgets.status_bar import StatusBar

from .ui_cost import REPLY

LOOSE_AND_ORDERED = (
    "Steps:\n\n1. first\n2. second with `code`\n\n   more of the second\n"
    "3. third\n\n- a\n- b\n  - nested\n- c **bold**\n\n```\nplain block\n```\n\nend\n"
)

TEN_STEPS = "".join(f"{n}. step {n}\n" for n in range(1, 12)) + "\nDone.\n"  # 9 -> 10: wider
CODE_IN_A_LIST = "- install:\n\n  ```sh\n  pip install x\n  ```\n- run it\n- `x --help`\n"


class OneMarkdown(App[None]):
    def __init__(self, widget: Markdown) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S{1,4}|\s+", text)


async def streamed_screen(text: str, size: tuple[int, int]) -> str:
    body = LiveMarkdown()
    app = OneMarkdown(body)
    async with app.run_test(size=size) as pilot:
        stream = BodyStream(body)  # as MessageBox streams
        written = ""
        for piece in pieces(text):
            written += piece
            body.stream_text(written)
            await stream.write(piece)
            if len(written) % 7 == 0:  # now and then, the screen catches up in between
                await pilot.pause(0)
        await stream.stop()
        body.end_stream()
        await pilot.pause()
        return app.export_screenshot()


async def whole_screen(text: str, size: tuple[int, int]) -> str:
    app = OneMarkdown(Markdown(text))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        return app.export_screenshot()


@pytest.mark.parametrize(
    "text",
    [REPLY, LOOSE_AND_ORDERED, REPLY + "\n```sh\necho cut", TEN_STEPS, CODE_IN_A_LIST],
    ids=["reply", "loose-ordered-nested", "cut-in-code", "ten-steps", "code-in-a-list"],
)
async def test_a_streamed_body_ends_as_the_whole_text_shown_at_once(text: str) -> None:
    size = (100, 90)
    assert await streamed_screen(text, size) == await whole_screen(text, size)


def test_open_fence() -> None:
    assert ends_in_open_fence("text\n\n```python\nx = 1")
    assert not ends_in_open_fence("text\n\n```python\nx = 1\n```")
    assert ends_in_open_fence("````\n```\n")  # a shorter fence does not close it
    assert not ends_in_open_fence("``` not `a fence`\n")  # backticks in a backtick info string
    assert ends_in_open_fence("~~~\n```\n") and not ends_in_open_fence("~~~\n~~~~\n")


async def test_an_open_code_block_is_plain_until_it_closes() -> None:
    body = LiveMarkdown()
    async with OneMarkdown(body).run_test() as pilot:
        text = "Code:\n\n```python\ndef f(x):\n    return x\n"
        body.stream_text(text)
        await body.append(text)
        await pilot.pause()
        fence = body.query_one(LiveFence)
        assert fence.plain and not list(fence._highlighted_code.spans)
        body.stream_text(text + "```\n")
        await body.append("```\n")
        await pilot.pause()
        fence = body.query_one(LiveFence)
        assert not fence.plain and list(fence._highlighted_code.spans)  # highlighted


async def test_a_code_block_open_when_the_stream_ends_is_highlighted() -> None:
    body = LiveMarkdown()
    async with OneMarkdown(body).run_test() as pilot:
        text = "```python\nx = 1\n"
        body.stream_text(text)
        await body.append(text)
        assert body.query_one(LiveFence).plain
        body.end_stream()
        await pilot.pause()
        assert list(body.query_one(LiveFence)._highlighted_code.spans)


async def test_a_growing_list_keeps_its_items() -> None:
    body = LiveMarkdown()
    async with OneMarkdown(body).run_test() as pilot:
        await body.append("- one\n- tw")
        await pilot.pause()
        rows = list(body.query_one("LiveBulletList").children)
        await body.append("o\n- three")
        await pilot.pause()
        now = list(body.query_one("LiveBulletList").children)
        assert now[:2] == rows and len(now) == 3  # updated in place, one row mounted
        texts = [str(p._content) for p in body.query("MarkdownParagraph")]
        assert texts == ["one", "two", "three"]


class OneStatusBar(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar()


async def test_live_figures_are_redrawn_a_few_times_a_second_and_end_exact() -> None:
    app = OneStatusBar()
    async with app.run_test() as pilot:
        bar = app.query_one(StatusBar)
        live = bar.query_one("#status-live", Static)
        drawn: list[object] = []
        update = live.update
        live.update = lambda content="", **kw: (drawn.append(content), update(content, **kw))  # type: ignore[method-assign]
        bar.start_reply()
        for n in range(2, 42):  # 40 batches at once: far faster than LIVE_REFRESH
            bar.stream(Stats(generated_tokens=n, tokens_per_second=float(n)), [float(n)])
        assert len(drawn) <= 2  # the reply's start, and maybe the first batch
        bar.show_held()  # as the reply ends
        await pilot.pause()
        assert str(live.render()) == str(live_line(bar.stats))
        assert bar.stats is not None and bar.stats.generated_tokens == 41
        assert list(bar.query_one("#status-spark").data) == [float(n) for n in range(2, 42)]  # type: ignore[attr-defined]
