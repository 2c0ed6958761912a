"""The prompt cache's tiers and files, with a stand-in model (no llama.cpp): budgets, damaged
files, a full disk, two processes sharing the directory, `specchat cache`, config.toml."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from specchat.cli import main
from specchat.config.prompt_cache import (
    PromptCacheConfig,
    load_prompt_cache_config,
    parse_size,
)
from specchat.engine.llama import prompt_cache as pc
from specchat.engine.llama.prompt_cache import MIN_TOKENS, CacheBudget, PromptCache, list_files
from specchat.errors import SpecchatError

from .stub import BYTES_PER_TOKEN, StubModel

KEY = '{"role": "target", "model": "stub.gguf"}'
MIB = 2**20


def tokens(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


def cache(directory: Path | None, memory: int = 64 * MIB, disk: int = 64 * MIB) -> PromptCache:
    return PromptCache(CacheBudget(memory, disk, directory))


def saved(c: PromptCache, toks: list[int], key: str = KEY) -> None:
    c.save(key, StubModel(toks))  # type: ignore[arg-type]
    c.flush()


def restore(c: PromptCache, prompt: list[int], key: str = KEY) -> tuple[int, StubModel]:
    model = StubModel()
    return c.restore(key, model, prompt, "target"), model  # type: ignore[arg-type]


def test_longest_prefix_restored_then_cut_to_what_the_prompt_shares(tmp_path: Path) -> None:
    c = cache(None)
    saved(c, tokens(200))
    saved(c, tokens(100, start=5000))
    # the prompt shares the first 150 tokens of the first state, then goes elsewhere
    got, model = restore(c, [*tokens(150), 9, 9, 9])
    assert got == 150 and model.tokens == tokens(150) and model.loaded == [200]
    # the last token of a prompt is always read again (its logits are needed)
    got, model = restore(c, tokens(200))
    assert got == 199
    tally = c.take_tally()
    assert tally.restored == {"target": 349} and tally.saved_ms > 0


def test_nothing_restored_when_the_live_cache_shares_as_much(tmp_path: Path) -> None:
    c = cache(None)
    saved(c, tokens(200))
    model = StubModel(tokens(190))
    assert c.restore(KEY, model, tokens(201), "target") == 0  # type: ignore[arg-type]
    assert model.loaded == []
    assert restore(c, tokens(200), key=KEY.replace("stub", "other"))[0] == 0  # another key


def test_short_states_are_not_kept_and_superseded_ones_are_dropped(tmp_path: Path) -> None:
    c = cache(tmp_path)
    saved(c, tokens(MIN_TOKENS - 1))
    assert not list(tmp_path.glob("*.seq"))
    saved(c, tokens(100))
    saved(c, tokens(300))  # the same chat, one turn later: the older state is not needed
    files = list_files(tmp_path)
    assert [e.n_tokens for e in files] == [300]
    assert restore(c, [*tokens(100), 7])[0] == 100


def test_memory_budget_evicts_least_recently_used(tmp_path: Path) -> None:
    one = 100 * BYTES_PER_TOKEN
    c = cache(None, memory=2 * one + 10)
    saved(c, tokens(100, start=0))
    saved(c, tokens(100, start=1000))
    assert restore(c, [*tokens(100, start=0), 1])[0] == 100  # used: now the newest
    saved(c, tokens(100, start=2000))  # the state of start=1000 goes
    assert restore(c, [*tokens(100, start=1000), 1])[0] == 0
    assert restore(c, [*tokens(100, start=0), 1])[0] == 100


def test_disk_budget_keeps_the_newest_files(tmp_path: Path) -> None:
    one = 100 * BYTES_PER_TOKEN + 1000  # a file: the state plus its header and tokens
    c = cache(tmp_path, memory=0, disk=2 * one)
    for start in (0, 1000, 2000):
        saved(c, tokens(100, start=start))
        os.utime(tmp_path, None)
    assert sum(e.size for e in list_files(tmp_path)) <= 2 * one
    fresh = cache(tmp_path, memory=0)
    assert restore(fresh, [*tokens(100, start=2000), 1])[0] == 100
    assert restore(fresh, [*tokens(100, start=0), 1])[0] == 0


def test_restart_reads_the_state_from_disk(tmp_path: Path) -> None:
    saved(cache(tmp_path), tokens(500))
    c = cache(tmp_path)
    got, model = restore(c, [*tokens(500), 1, 2])
    assert got == 500 and model.tokens == tokens(500)
    assert c.take_notices() == []


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "zero-byte":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) - 100])
    elif how == "flipped":
        path.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    elif how == "foreign":
        path.write_bytes(b"GGUF" + data[4:])
    elif how == "bad header":
        path.write_bytes(data[:12] + b"{not json" + data[21:])


@pytest.mark.parametrize("how", ["zero-byte", "truncated", "flipped", "foreign", "bad header"])
def test_damaged_file_is_ignored_removed_and_said_once(tmp_path: Path, how: str) -> None:
    saved(cache(tmp_path), tokens(300))
    (path,) = tmp_path.glob("*.seq")
    _damage(path, how)
    c = cache(tmp_path)
    got, model = restore(c, [*tokens(300), 1])
    assert got == 0 and model.loaded == []
    assert not path.exists()
    notices = c.take_notices()
    assert len(notices) == 1 and path.name in notices[0] and "damaged" in notices[0]
    assert restore(c, [*tokens(300), 1])[0] == 0
    assert c.take_notices() == []  # said once


def test_state_refused_by_the_model_is_removed(tmp_path: Path) -> None:
    saved(cache(tmp_path), tokens(300))
    (path,) = tmp_path.glob("*.seq")

    class Refusing(StubModel):
        def load_state(self, data: bytearray, toks: object) -> bool:
            self.tokens = []
            return False

    c = cache(tmp_path)
    assert c.restore(KEY, Refusing(), [*tokens(300), 1], "target") == 0  # type: ignore[arg-type]
    assert not path.exists() and len(c.take_notices()) == 1


def test_full_disk_turns_the_disk_tier_off_with_one_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pc.os, "replace", full)
    c = cache(tmp_path)
    saved(c, tokens(100))
    saved(c, tokens(100, start=1000))
    notices = c.take_notices()
    assert len(notices) == 1 and "disk is full" in notices[0]
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
    assert restore(c, [*tokens(100, start=1000), 1])[0] == 100  # memory still serves


WRITER = """
import sys
from pathlib import Path
sys.path[:0] = [{app!r}, {tests!r}]
from specchat.engine.llama.prompt_cache import CacheBudget, PromptCache
from cache.stub import StubModel
c = PromptCache(CacheBudget(0, {disk}, Path({directory!r})))
for i in range(40):
    start = (i % 12) * 1000  # both processes write some of the same states
    c.save({key!r}, StubModel(range(start, start + 64 + 40 * (i % 5))))
c.close()
print("ok", c.take_notices())
"""


def test_two_processes_writing_at_once_leave_only_whole_files(tmp_path: Path) -> None:
    app = str(Path(__file__).resolve().parents[2] / "app")
    tests = str(Path(__file__).resolve().parents[1])
    budget = 300_000  # far less than all they write: both evict while the other writes
    code = WRITER.format(app=app, tests=tests, disk=budget, directory=str(tmp_path), key=KEY)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(out.strip() == "ok []" for out in outs), outs
    files = list(tmp_path.iterdir())
    assert files and all(f.suffix == ".seq" for f in files)  # no temporary files
    c = cache(tmp_path, memory=0)
    for entry in list_files(tmp_path):
        assert entry.model != "(damaged)"
    for path in files:  # every file left restores whole, checksum and all
        head = c._head(path)
        assert head is not None
        assert c._read_data(head) is not None
    assert c.take_notices() == []


def test_cache_command_lists_sizes_and_clears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPECCHAT_PROMPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SPECCHAT_KEYS_FILE", str(tmp_path / "none.toml"))
    key = '{"role": "draft", "model": "SmolLM2.gguf"}'
    saved(cache(tmp_path), tokens(400), key=key)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "draft" in out and "400" in out and "SmolLM2.gguf" in out
    assert main(["cache", "size"]) == 0
    assert "in 1 files" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 files" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.seq"))
    assert main(["cache", "list"]) == 0
    assert "empty" in capsys.readouterr().out


def test_sizes_and_config() -> None:
    assert parse_size("4 GiB") == 4 * 2**30
    assert parse_size("512MB") == 512 * 10**6
    assert parse_size("1.5g") == 1_500_000_000
    assert parse_size(1234) == 1234
    for bad in ("lots", "-1", "4 parsecs"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert PromptCacheConfig().disk == 4 * 2**30


def test_bad_config_table_is_one_line_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[prompt_cache]\ndisk = "lots"\n')
    with pytest.raises(SpecchatError, match=r"config.toml: \[prompt_cache\] disk: .*lots"):
        load_prompt_cache_config(path)
    path.write_text("[prompt_cache]\nmemroy = 1\n")
    with pytest.raises(SpecchatError, match="memroy"):
        load_prompt_cache_config(path)
    path.write_text('[prompt_cache]\nenabled = false\nmemory = "1 GiB"\n')
    config = load_prompt_cache_config(path)
    assert not config.enabled and config.memory == 2**30
