"""Status bar values, sparkline, origin colouring, per-message stats, chat summary."""

from __future__ import annotations

from textual.widgets import Collapsible, DataTable, Sparkline, Static

from specchat.tui.format import DRAFT_STYLE, TARGET_STYLE
from specchat.tui.screens import SummaryScreen
from specchat.tui.widgets import MessageBox

from .conftest import ready, send, wait_for
from .contrast import contrast
from .fake_engine import FakeEngine, scripted

TEXT = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"


def text_of(widget: Static) -> str:
    return str(widget.render())


async def test_status_bar_shows_engine_stats_live_and_final(make_app) -> None:
    engine = FakeEngine(reply=lambda m: scripted(TEXT), pause_after=6)
    app = make_app(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await ready(pilot)
        engine_line = text_of(screen.query_one("#status-engine", Static))
        assert "CPU" in engine_line and "SmolLM2-1.7B" in engine_line
        assert "SmolLM2-135M" in engine_line
        await send(pilot, "go", wait=False)
        await wait_for(pilot, lambda: engine.paused.is_set())
        live = screen.query_one("#status-live", Static)
        # after 6 tokens: passes of 3 draft + 1 target -> 1 full pass; the fake's virtual clock
        # gives 40 ms per pass. The bar shows the engine's latest ProgressEvent, verbatim.
        await wait_for(pilot, lambda: "accepted 75% (3/4)" in text_of(live))
        assert "100.0 tok/s" in text_of(live)
        assert "4.00 tok/pass" in text_of(live)
        assert "draft 4" in text_of(live) and "TTFT 160 ms" in text_of(live)
        engine.resume.set()
        await wait_for(pilot, lambda: screen.replies_finished > 0)
        final = screen.replies_finished and screen.query(MessageBox).last().stats
        assert final["generated_tokens"] == 12 and final["accepted"] == 9
        assert "accepted 75% (9/12)" in text_of(live)
        assert "100.0 tok/s" in text_of(live)
        spark = screen.query_one("#status-spark", Sparkline)
        assert list(spark.data) == [100.0, 100.0, 100.0]  # one point per ProgressEvent


async def test_final_stats_stay_on_message_expandable(make_app) -> None:
    app = make_app(FakeEngine(reply=lambda m: scripted(TEXT)))
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "go")
        stats = screen.query(MessageBox).last().query_one(Collapsible)
        assert stats.collapsed
        headline = "100.0 tok/s · 12 tokens · acceptance 75% · 4.00 tok/pass · TTFT 160 ms"
        assert stats.title == headline
        stats.collapsed = False
        await pilot.pause()
        table = text_of(stats.query_one(".stats-table", Static))
        assert "target passes" in table and "drafted" in table


async def test_origin_colouring_toggle(make_app) -> None:
    app = make_app(FakeEngine(reply=lambda m: scripted("a b c d e f g h", accepted_per_pass=1)))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "go")
        box = screen.query(MessageBox).last()
        origins = box.query_one(".message-origins", Static)
        assert not origins.display
        await pilot.press("ctrl+o")
        assert origins.display and not box.query_one(".message-body").display
        content = origins.render()
        spans = [(content.plain[s.start : s.end], str(s.style)) for s in content.spans]
        assert spans[:3] == [("a", DRAFT_STYLE), (" b", TARGET_STYLE), (" c", DRAFT_STYLE)]
        assert "draft" in text_of(screen.query_one("#status-legend", Static))
        # legible in both themes: the style names resolve to theme colours in light mode too
        app.theme = "textual-light"
        await pilot.pause()
        assert origins.display
        await pilot.press("ctrl+o")
        assert not origins.display and box.query_one(".message-body").display


async def test_chat_summary_lists_each_reply(make_app) -> None:
    app = make_app(FakeEngine(reply=lambda m: scripted(TEXT)))
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "one")
        await send(pilot, "two")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen))
        table = app.screen.query_one(DataTable)
        assert table.row_count == 2
        assert table.get_row_at(0)[:4] == ["1", "12", "100.0", "75%"]
        totals = text_of(app.screen.query_one("#summary-totals"))
        assert "2 replies · 24 tokens" in totals and "acceptance 75% (18/24)" in totals
        await pilot.press("escape")


def test_backend_line_shows_offloaded_layers_on_gpu() -> None:
    from dataclasses import replace

    from specchat.engine.types import DraftMode
    from specchat.tui.format import backend_line

    from .fake_engine import fake_info

    info = fake_info()
    assert backend_line(info) == "CPU · target SmolLM2-1.7B · draft SmolLM2-135M"
    gpu = replace(
        info,
        backend="CUDA",
        target=replace(info.target, n_gpu_layers=20),
        draft=replace(info.draft, n_gpu_layers=30),
    )
    assert backend_line(gpu) == (
        "CUDA · target SmolLM2-1.7B (20/25 layers) · draft SmolLM2-135M (30/31 layers)"
    )
    alone = replace(info, draft=None, mode=DraftMode.NONE)
    assert backend_line(alone) == "CPU · target SmolLM2-1.7B · no draft model"


async def test_origin_colours_are_legible_in_dark_and_light_themes() -> None:
    from textual.app import App, ComposeResult
    from textual.content import Content

    class Probe(App[None]):
        def compose(self) -> ComposeResult:
            yield Static(Content.assemble(("draft", DRAFT_STYLE), ("target", TARGET_STYLE)))

    app = Probe()
    async with app.run_test() as pilot:
        for theme in ("textual-dark", "textual-light", "solarized-light", "nord"):
            app.theme = theme
            await pilot.pause()
            static = app.query_one(Static)
            segments = list(static.render_lines(static.region.reset_offset)[0])[:2]
            backgrounds = set()
            for segment in segments:
                fg, bg = segment.style.color.triplet.hex, segment.style.bgcolor.triplet.hex
                assert contrast(fg, bg) >= 4.5, (theme, segment.text, fg, bg)  # WCAG AA
                backgrounds.add(bg)
            assert len(backgrounds) == 2, theme  # the two origins look different
            assert segments[1].style.underline and not segments[0].style.underline


async def test_status_bar_says_what_the_prompt_cache_restored(make_app) -> None:
    engine = FakeEngine(reply=lambda m: scripted(TEXT), restored=(2950, 25_100.0))
    app = make_app(engine)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "go")
        live = text_of(screen.query_one("#status-live", Static))
        assert "2,950 prompt tokens from the cache, saved 25.1 s" in live
    plain = make_app(FakeEngine(reply=lambda m: scripted(TEXT)))
    async with plain.run_test(size=(160, 40)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "go")
        assert "cache" not in text_of(screen.query_one("#status-live", Static))
