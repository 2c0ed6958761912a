"""`specchat ask` end to end on tiny models."""

from __future__ import annotations

import json
import sys

from specchat.cli import main


def test_ask_json_matches_target_alone(capsys, tiny_target, tiny_draft):
    base = ["ask", "--target", str(tiny_target), "--max-tokens", "25", "--json", "the cat"]
    assert main([*base[:3], "--no-draft", *base[3:]]) == 0
    alone = json.loads(capsys.readouterr().out)
    # fixed length: the tiny draft costs as much as its target, so adaptive would not draft
    spec_args = ["--draft", str(tiny_draft), "--draft-max", "4", "--no-adaptive"]
    assert main([*base[:3], *spec_args, *base[3:]]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["token_ids"] == alone["token_ids"]
    assert spec["text"] == alone["text"]
    stats = spec["stats"]
    assert list(stats)[:12] == [
        "prompt_tokens",
        "prompt_ms",
        "generated_tokens",
        "generation_ms",
        "tokens_per_second",
        "ttft_ms",
        "drafted",
        "accepted",
        "acceptance_rate",
        "target_passes",
        "tokens_per_pass",
        "draft_max",
    ]
    assert stats["generated_tokens"] == 25 and stats["drafted"] > 0
    assert alone["stats"]["drafted"] == 0 and alone["stats"]["tokens_per_pass"] == 1.0


def test_ask_text_streams_reply_and_stats_line(capsys, tiny_target):
    assert (
        main(["ask", "--target", str(tiny_target), "--lookup", "--max-tokens", "10", "a b a b a b"])
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out.strip()
    assert "tok/s" in captured.err and "mode lookup" in captured.err


def test_ask_with_a_pair_from_a_config_file(tmp_path, capsys, tiny_target, tiny_other_vocab):
    config = tmp_path / "models.toml"
    config.write_text(
        f"""
[pairs.tiny]
description = "tiny generated models"
cross_vocab = true
draft_max = 3
[pairs.tiny.target]
path = "{tiny_target}"
n_ctx = 512
[pairs.tiny.draft]
path = "{tiny_other_vocab}"
n_ctx = 512
"""
    )
    argv = ["--config", str(config), "ask", "--pair", "tiny", "--max-tokens", "12", "--json", "the"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["cross_vocab"] is True
    assert out["stats"]["generated_tokens"] == 12
    assert main(["--config", str(config), "ask", "--pair", "nope", "hi"]) == 2
    assert "unknown model pair 'nope'" in capsys.readouterr().err


class _SwitchesOff:
    """An engine that says, as its reply ends, that speculation is off (what a draft too heavy
    to pay brings; the controller's decision is tested in test_adaptive.py)."""

    class info:  # stands in for EngineInfo
        notices: tuple[str, ...] = ()

    def chat(self, messages, generation):
        from specchat.engine.types import DoneEvent, NoticeEvent, Origin, Stats, TokenEvent

        yield TokenEvent("Hello", 1, Origin.TARGET)
        yield TokenEvent(" there", 2, Origin.TARGET)
        yield NoticeEvent("speculation is off for now: the draft does not pay")
        yield DoneEvent("Hello there", (1, 2), Stats(generated_tokens=2, mode="model"))

    def close(self) -> None:
        pass


def test_ask_prints_a_late_notice_after_the_reply_not_inside_it(monkeypatch, tmp_path):
    """A notice that comes at the end of the reply: on a terminal (stdout and stderr on one
    screen) it starts on its own line, after the reply text, before the stats line."""
    import io

    import specchat.commands.ask as ask

    monkeypatch.setattr(ask, "resolve_model_request", lambda args: args)
    monkeypatch.setattr(ask, "load_pair", lambda request, prompt_cache=None: _SwitchesOff())
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["ask", "--target", str(tmp_path / "t.gguf"), "the cat"]) == 0
    lines = terminal.getvalue().splitlines()
    notice = "specchat: speculation is off for now: the draft does not pay"
    assert lines[:2] == ["Hello there", notice]
    assert len(lines) == 3 and lines[2].startswith("[2 tokens"), lines  # the stats line last


class _FailsMidway:
    """An engine whose reply breaks after two tokens, as a refused cache rollback would."""

    class info:  # stands in for EngineInfo
        notices: tuple[str, ...] = ()

    closed = False

    def chat(self, messages, generation):
        from specchat.engine.types import Origin, TokenEvent
        from specchat.errors import SpecchatError

        yield TokenEvent("Hello", 1, Origin.TARGET)
        yield TokenEvent(" there", 2, Origin.TARGET)
        raise SpecchatError("llama.cpp refused to roll back the cache")

    def close(self) -> None:
        self.closed = True


def test_a_reply_that_fails_midway_keeps_its_text(monkeypatch, capsys, tmp_path):
    import specchat.commands.ask as ask

    engine = _FailsMidway()
    monkeypatch.setattr(ask, "resolve_model_request", lambda args: args)
    monkeypatch.setattr(ask, "load_pair", lambda request, prompt_cache=None: engine)
    target = ["--target", str(tmp_path / "t.gguf")]
    assert main(["ask", *target, "hi"]) == 2
    out, err = capsys.readouterr()
    assert out == "Hello there\n"
    assert err.strip() == "specchat: error: llama.cpp refused to roll back the cache"
    assert engine.closed
    assert main(["ask", *target, "--json", "hi"]) == 2
    out, _ = capsys.readouterr()
    assert json.loads(out) == {
        "text": "Hello there",
        "token_ids": [1, 2],
        "error": "llama.cpp refused to roll back the cache",
    }
