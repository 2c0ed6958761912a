"""Built-in prompt sets, the JSONL prompt file, and bad input at the command line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.bench.prompts import BUILTIN, builtin_set, load_prompt_file
from specchat.cli import main
from specchat.errors import SpecchatError


def test_builtin_sets() -> None:
    assert set(BUILTIN) == {"chat", "code", "rewrite", "long-context", "edit"}
    for name in BUILTIN:
        prompts = builtin_set(name, system="be brief")
        assert prompts and all(p.name.startswith(f"{name}/") for p in prompts)
        assert all(p.messages[0].role == "system" and p.messages[-1].role == "user"
                   for p in prompts)
    assert len(builtin_set("long-context")[0].messages[-1].content) > 2500
    with pytest.raises(SpecchatError, match="unknown prompt set"):
        builtin_set("poetry")


def test_edit_sets_carry_the_code_to_copy() -> None:
    edits = builtin_set("edit")
    assert [p.name for p in edits] == ["edit/rename", "edit/hints", "edit/logging"]
    assert all("def top_customers" in p.messages[-1].content for p in edits)
    (chat,) = builtin_set("edit-chat", system="be brief")
    assert chat.name == "edit-chat/3-turns" and len(chat.followups) == 2
    assert chat.messages[0].role == "system" and "def load_rows" in chat.messages[-1].content


def test_prompt_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.jsonl"
    f.write_text(
        '{"prompt": "hello"}\n'
        "\n# a comment\n"
        '{"name": "multi", "system": "sys", "messages": [{"role": "user", "content": "a"}, '
        '{"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}\n',
        encoding="utf-8",
    )
    one, two = load_prompt_file(f)
    assert one.name == "mine/1" and [m.content for m in one.messages] == ["hello"]
    assert two.name == "multi"
    assert [m.role for m in two.messages] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"text": "x"}', "needs 'prompt'"),
        ('{"prompt": ""}', "non-empty string"),
        ('{"prompt": "x", "name": 3}', "must be strings"),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "each message needs"),
        ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}',
         "last message must be from the user"),
    ],
)
def test_bad_prompt_lines(tmp_path: Path, line: str, message: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(SpecchatError, match=message) as err:
        load_prompt_file(f)
    assert f"{f}:2" in err.value.message


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n# nothing\n", encoding="utf-8")
    with pytest.raises(SpecchatError, match="no prompts"):
        load_prompt_file(empty)
    with pytest.raises(SpecchatError, match="no such prompt file"):
        load_prompt_file(tmp_path / "missing.jsonl")


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--prompts", "/nonexistent/p.jsonl"], "no such prompt file"),
        (["--prompt-set", "poetry"], "unknown prompt set"),
        (["--draft-lengths", "2,x"], "--draft-lengths must be integers"),
        (["--draft-lengths", "0,4"], "between 1 and 32"),
        (["--rounds", "0"], "--rounds must be >= 1"),
        (["--plot", "/nonexistent-dir/p.png"], "--plot"),
        (["--llama-cpp-bin", "/nonexistent-dir"], "--llama-cpp-bin: not a folder"),
        (["--max-tokens", "0"], "--max-tokens must be"),
    ],
)
def test_bench_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               extra: list[str], needle: str) -> None:
    target = tmp_path / "t.gguf"
    target.write_bytes(b"GGUF")
    _one_line_error(capsys, ["bench", "--target", str(target), *extra], needle)


def test_bench_bad_prompt_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text("{oops\n", encoding="utf-8")
    _one_line_error(capsys, ["bench", "--target", str(tmp_path / "t.gguf"), "--prompts", str(f)],
                    "not valid JSON")


def test_bench_missing_model_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _one_line_error(capsys, ["bench", "--target", str(tmp_path / "none.gguf")], "not found")


def test_the_all_set_includes_the_multi_turn_chats() -> None:
    import argparse

    from specchat.commands.bench import _prompts

    prompts = _prompts(argparse.Namespace(prompts=None, prompt_set="all", system=None))
    assert any(p.followups for p in prompts)
    assert any(p.name.startswith("edit/") for p in prompts)
