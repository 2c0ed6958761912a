"""Token origins told apart by drafter: copied from the conversation (suffix drafter), drafted
by the draft model, or the target's own; in the colouring, its legend, history and the stats."""

from __future__ import annotations

import re

from textual.app import App, ComposeResult
from textual.content import Content
from textual.theme import BUILTIN_THEMES
from textual.widgets import Collapsible, DataTable, Static

from specchat.engine.types import DrafterKind, Origin, Stats, TokenEvent
from specchat.stats_format import ask_line
from specchat.store import ChatStore
from specchat.tui.format import MODEL_STYLE, SUFFIX_STYLE, TARGET_STYLE
from specchat.tui.screens import SummaryScreen
from specchat.tui.widgets import MessageBox
from specchat.tui.worker import Batcher, ReplyBatch

from .conftest import ready, send, wait_for
from .contrast import contrast
from .fake_engine import FakeEngine, chained

TEXT = "one two three four five six seven eight nine ten eleven twelve"
# rounds: 3 copied drafts + 1 target, then 1 model draft + 1 target, again (draft_max 4):
# suffix 6 accepted of 8 drafted, model 2 of 8, overall 8 of 16, 4 target passes
ROUNDS = (("suffix", 3), ("model", 1))
SEGMENTS = [
    ["one two three", "suffix"],
    [" four", "target"],
    [" five", "model"],
    [" six", "target"],
    [" seven eight nine", "suffix"],
    [" ten", "target"],
    [" eleven", "model"],
    [" twelve", "target"],
]
STYLE_OF = {"suffix": SUFFIX_STYLE, "model": MODEL_STYLE, "target": TARGET_STYLE}


def chained_engine() -> FakeEngine:
    return FakeEngine(reply=lambda m: chained(TEXT, ROUNDS))


def text_of(widget: Static) -> str:
    return str(widget.render())


def spans_of(box: MessageBox) -> list[tuple[str, str]]:
    content = box.query_one(".message-origins", Static).render()
    assert isinstance(content, Content)
    return [(content.plain[s.start : s.end], str(s.style)) for s in content.spans]


def test_batcher_names_the_drafter_of_each_draft_token() -> None:
    posted: list[object] = []
    batcher = Batcher(1, posted.append)
    for event in (
        TokenEvent("a", 1, Origin.DRAFT, drafter=DrafterKind.SUFFIX),
        TokenEvent("b", 2, Origin.DRAFT, drafter=DrafterKind.MODEL),
        TokenEvent("c", 3, Origin.DRAFT),  # drafter unknown
        TokenEvent("d", 4, Origin.TARGET),
    ):
        batcher.token(event)
    batcher.flush()
    (batch,) = posted
    assert isinstance(batch, ReplyBatch)
    assert batch.tokens == (("a", "suffix"), ("b", "model"), ("c", "draft"), ("d", "target"))


async def test_three_origins_are_saved_and_coloured_after_reopening(make_app) -> None:
    app = make_app(chained_engine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "count")
        assert screen.query(MessageBox).last().segments == SEGMENTS
        saved = app.store.messages(screen.chat.id)[-1].segments
        assert [list(s) for s in saved] == SEGMENTS
    app = make_app(chained_engine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        box = screen.query(MessageBox).last()
        assert box.segments == SEGMENTS
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert spans_of(box) == [(text, STYLE_OF[origin]) for text, origin in SEGMENTS]
        legend = text_of(screen.query_one("#status-legend", Static))
        assert "copied" in legend and "drafted" in legend and "target" in legend
        await pilot.press("ctrl+o")
        assert not text_of(screen.query_one("#status-legend", Static)).strip()


async def test_replies_saved_with_plain_draft_origins_render_as_model_drafts(
    make_app, db_path
) -> None:
    store = ChatStore(db_path)
    chat = store.create_chat("before the drafter kinds")
    store.add_message(chat.id, "user", "q")
    reply = store.begin_reply(chat.id)
    store.update_reply(reply.id, "old one", [("old", "draft"), (" one", "target")])
    store.close()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        box = screen.query(MessageBox).last()
        assert spans_of(box) == [("old", MODEL_STYLE), (" one", TARGET_STYLE)]


async def test_reply_stats_show_acceptance_per_drafter_kind(make_app) -> None:
    app = make_app(chained_engine())
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "count")
        stats = screen.query(MessageBox).last().query_one(Collapsible)
        assert "acceptance 50% (suffix 75%, model 25%) · 3.00 tok/pass" in stats.title
        stats.collapsed = False
        await pilot.pause()
        table = text_of(stats.query_one(".stats-table", Static))
        assert re.search(r"acceptance, copied \(suffix\) +75% \(6/8\)", table), table
        assert re.search(r"acceptance, drafted \(model\) +25% \(2/8\)", table), table


async def test_chat_summary_shows_acceptance_per_drafter_kind(make_app) -> None:
    app = make_app(chained_engine())
    async with app.run_test(size=(160, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "one")
        await send(pilot, "two")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen))
        table = app.screen.query_one(DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[4:7] == ["accepted/drafted", "suffix acceptance", "model acceptance"]
        assert table.get_row_at(0)[3:7] == ["50%", "8/16", "75% (6/8)", "25% (2/8)"]
        totals = str(app.screen.query_one("#summary-totals", Static).render())
        assert "acceptance 50% (16/32) · suffix 75% (12/16) · model 25% (4/16)" in totals


def test_ask_stats_line_shows_acceptance_per_drafter_kind() -> None:
    stats = Stats(
        drafted=16,
        accepted=8,
        acceptance_rate=0.5,
        suffix_drafted=8,
        suffix_accepted=6,
        model_drafted=8,
        model_accepted=2,
        mode="model",
    )
    assert "acceptance 50% (8/16), suffix 75% (6/8), model 25% (2/8)," in ask_line(stats)


async def test_three_origin_styles_differ_and_are_legible_in_every_builtin_theme() -> None:
    styles = (SUFFIX_STYLE, MODEL_STYLE, TARGET_STYLE)

    class Probe(App[None]):
        def compose(self) -> ComposeResult:
            yield Static(Content.assemble(*(("x", style) for style in styles)))

    app = Probe()
    async with app.run_test() as pilot:
        for theme in BUILTIN_THEMES:
            app.theme = theme
            await pilot.pause()
            static = app.query_one(Static)
            segments = list(static.render_lines(static.region.reset_offset)[0])[:3]
            backgrounds = {segment.style.bgcolor for segment in segments}
            assert len(backgrounds) == 3, theme  # three tints
            suffix, model, target = (segment.style for segment in segments)
            # and not by colour alone: copied tokens are italic, the target's underlined
            assert suffix.italic and not model.italic and not target.italic, theme
            assert target.underline and not model.underline and not suffix.underline, theme
            for segment in segments:
                fg, bg = segment.style.color, segment.style.bgcolor
                if fg.triplet is None or bg.triplet is None:
                    continue  # the ANSI themes: the terminal's own palette
                assert contrast(fg.triplet.hex, bg.triplet.hex) >= 4.5, (theme, fg, bg)
