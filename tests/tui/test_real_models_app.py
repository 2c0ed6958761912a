"""The model views on a real pair: the context meter counts with the real template and
tokenizer, and the target-alone speed is measured after the load."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.cli import build_parser
from specchat.commands.model_args import pair_request
from specchat.engine.types import DraftMode
from specchat.store import ChatStore
from specchat.tui import SpecchatApp
from specchat.tui.loader import CliLoader
from specchat.tui.widgets.context_meter import ContextMeter

from .conftest import ready, send, wait_for

pytestmark = pytest.mark.real


async def test_context_meter_and_baseline_on_a_real_pair(
    real_models: dict[str, Path], tmp_path: Path
) -> None:
    model = str(real_models["smollm2"])
    args = build_parser().parse_args(
        ["chat", "--target", model, "--draft", model, "--max-tokens", "16", "--n-ctx", "1024"]
    )
    loader = CliLoader(pair_request(args), recent_file=tmp_path / "recent.json")
    app = SpecchatApp(ChatStore(tmp_path / "h.sqlite3"), loader, export_dir=tmp_path)
    async with app.run_test() as pilot:
        screen = await ready(pilot, timeout=120)
        assert screen.engine_state == "ready", screen.engine_error
        line = screen.query_one("#speed-line")
        await wait_for(pilot, lambda: "no reply in this chat yet" in str(line.render()), 120)
        engine = screen.worker.engine
        assert engine is not None and engine.spec.mode is DraftMode.MODEL  # restored
        await send(pilot, "Say hello.", timeout=120)
        meter = screen.query_one(ContextMeter)
        await wait_for(pilot, lambda: meter.forecast is not None and meter.forecast.used > 0, 60)
        stats = app.store.messages(screen.chat.id)[-1].stats
        assert stats is not None and meter.forecast.n_ctx == 1024
        # the next prompt holds this one (counted by the engine as prompt_tokens) and the reply
        assert meter.forecast.used > stats["prompt_tokens"]
        assert meter.forecast.used <= stats["prompt_tokens"] + stats["generated_tokens"] + 8
        await wait_for(pilot, lambda: "in this chat (1 reply)" in str(line.render()), 30)
        assert loader.current is not None  # the files, recorded as what was loaded
        chat = app.store.get_chat(screen.chat.id)
        assert chat.target_path == model and chat.draft_path == model


def test_open_model_check_matches_the_cli(real_models: dict[str, Path], tmp_path: Path) -> None:
    """The dialog's check is `models check`: same lines, same verdict, same error."""
    from specchat.errors import VocabMismatchError
    from specchat.tui.loader import ModelFiles

    smol, qwen = real_models["smollm2"], real_models["qwen"]
    request = pair_request(build_parser().parse_args(["chat"]))
    loader = CliLoader(request, recent_file=tmp_path / "r.json")
    same = loader.check(ModelFiles(smol, smol))
    assert same.usable and "  vocab  same vocabulary: token-level drafting" in same.lines
    assert any(line.startswith("  memory needs ~") for line in same.lines)
    mixed = loader.check(ModelFiles(qwen, smol))
    assert isinstance(mixed.error, VocabMismatchError)
    assert "do not share a vocabulary" in mixed.error.message
    crossed = loader.check(ModelFiles(qwen, smol, cross_vocab=True))  # the dialog's checkbox
    assert crossed.usable and any("cross-vocabulary drafting is on" in x for x in crossed.lines)
