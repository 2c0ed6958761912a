"""`specchat bench --prompt-set agent`: the scripted session's file and report, and one short
session through the API on the real Qwen2.5-Coder-0.5B (replies equal, prompt time counted)."""

from __future__ import annotations

import ast

import pytest

from specchat.bench.agent import (
    Session,
    Turn,
    ceiling,
    default_modes,
    report,
    run_agent_bench,
    source_file,
)
from specchat.engine import load_engine
from specchat.engine.types import DraftMode, ModelSettings, SpecSettings


def test_the_source_file_is_150_lines_of_python():
    text = source_file()
    assert len(text.splitlines()) == 150
    assert len([n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef)]) == 21


def test_report_compares_with_the_first_mode():
    def turn(seconds: float, reply: str) -> Turn:
        return Turn(seconds, 100, 40, 50, 30, 20, reply)

    alone = Session("target alone", [turn(4.0, "a"), turn(6.0, "b")])
    chain = Session("chain", [turn(2.0, "a"), turn(2.0, "b")])
    other = Session("other", [turn(5.0, "a"), turn(5.0, "c")])
    rows = report([alone, chain, other])["sessions"]
    assert [r["speedup"] for r in rows] == [1.0, 2.5, 1.0]
    assert [r["identical"] for r in rows] == [True, True, False]
    # the same parsed reply from more tokens (text after a tool call) is not the same reply
    longer = Session("chain", [turn(2.0, "a"), Turn(2.0, 100, 40, 51, 30, 20, "b")])
    assert not report([alone, longer])["sessions"][1]["identical"]
    assert rows[1]["prompt_tokens"] == 120 and rows[1]["acceptance_rate"] == pytest.approx(0.667,
                                                                                          abs=1e-3)


def test_the_ceiling_drafts_every_token_at_the_cheapest_measured_width():
    # target alone: 1 s fixed, then 9 tokens after the first at 1 s each
    alone = Session("target alone", [Turn(10.0, 100, 0, 10, 0, 0, "a", generation_ms=9000.0)])
    chain = Session("chain", [Turn(5.0, 100, 0, 10, 9, 8, "a", generation_ms=3000.0)],
                    pass_ratio={2: 1.5, 3: 1.8, 5: 4.9})
    # width 2: 5 passes x 1.5 s; width 3: 3 x 1.8 s (the best); width 5: 2 x 4.9 s
    speedup, width = ceiling(alone, chain)
    assert width == 3 and speedup == pytest.approx(10.0 / (1.0 + 3 * 1.8))
    row = report([alone, chain])["sessions"][1]
    assert row["ceiling"] == round(speedup, 2) and row["ceiling_width"] == 3
    assert report([alone, Session("chain", chain.turns)])["sessions"][1]["ceiling"] is None


def test_modes_are_the_target_alone_and_the_chosen_chain():
    assert [s.mode for _, s in default_modes(SpecSettings(mode=DraftMode.MODEL))] == [
        DraftMode.NONE, DraftMode.MODEL]
    assert default_modes(SpecSettings(mode=DraftMode.NONE))[1][1].mode is DraftMode.LOOKUP
    # the command line's limits reach the suffix drafter (--suffix-max 6: passes of at most 7)
    chain = default_modes(SpecSettings(mode=DraftMode.NONE, suffix_max=6, adaptive=False))[1][1]
    assert (chain.mode, chain.suffix_max, chain.adaptive) == (DraftMode.LOOKUP, 6, False)


@pytest.mark.real
def test_a_short_session_through_the_api(real_models):
    # the K-quant exactness recipe (docs/engine.md): one thread, batches of at most 5
    engine = load_engine(
        ModelSettings(path=real_models["qwen"], n_ctx=4096, n_threads=1),
        None,
        SpecSettings(mode=DraftMode.LOOKUP, draft_max=4, suffix_max=4, adaptive=False),
    )
    sessions = run_agent_bench(engine, "qwen", default_modes(engine.spec), 400, functions=2)
    alone, chain = report(sessions)["sessions"]
    assert chain["identical"] and alone["generated_tokens"] == chain["generated_tokens"]
    assert chain["acceptance_rate"] > 0 and all(s > 0 for s in chain["turn_seconds"])
    replies = [t.reply for t in sessions[1].turns]
    assert len(replies) == 4
    assert '"name": "read_file"' in replies[0] and '"name": "run_tests"' in replies[2]
    assert "def celsius_to_fahrenheit" in replies[1]  # the edit: the file again
    assert chain["turn_seconds"][1] > 0
    # the ceiling reads the measured pass costs, at widths this chain may verify (1 + 4 drafts)
    assert chain["ceiling"] is not None and 2 <= chain["ceiling_width"] <= 5


def test_the_agent_set_resolves_its_models_like_every_command(tmp_path, capsys):
    """`specchat bench --prompt-set agent` goes through the same request layer: a missing model
    file is one line and exit 2."""
    from specchat.cli import main

    assert main(["bench", "--prompt-set", "agent", "--target", str(tmp_path / "x.gguf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model file not found" in err[0]
