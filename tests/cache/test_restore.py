"""The prompt cache on real models: states restored across a new engine (a restart), a chat
switch and a `specchat ask --prompt-cache` process each give the same greedy reply as without
the cache; a state of another model file, context size or KV type is never used; a state that
llama.cpp refuses is removed with one notice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from specchat.engine.llama.prompt_cache import (
    HEAD,
    CacheBudget,
    PromptCache,
    Snapshot,
    _encode_head,
    _file_name,
    model_key,
)
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    NoticeEvent,
    SpecSettings,
)

pytestmark = [pytest.mark.real, pytest.mark.slow]

GIB = 2**30
GREEDY = GenerationSettings(max_tokens=24)
# ~450 tokens of a document the questions are about: long enough that re-reading shows
DOC = " ".join(
    f"Station {i} reports {i * 7 % 13} degrees and wind {i * 5 % 11}." for i in range(40)
)


def chat_a(reply: str = "") -> list[Message]:
    first = [Message("user", f"Weather log:\n{DOC}\nWhich station is warmest?")]
    return first if not reply else [*first, Message("assistant", reply),
                                     Message("user", "And which is the windiest?")]


def chat_b() -> list[Message]:
    return [Message("user", f"Summarize in one line:\n{DOC[::-1]}")]


def load(
    target: Path, draft: Path | None, cache: PromptCache | None, n_ctx: int = 2048,
    cross_vocab: bool = False,
) -> SpeculativeEngine:
    """One thread and drafts of at most 4: where the README promises identity."""
    engine = SpeculativeEngine.load(
        ModelSettings(target, n_ctx=n_ctx, n_threads=1),
        ModelSettings(draft, n_ctx=n_ctx, n_threads=1) if draft else None,
        SpecSettings(
            mode=DraftMode.MODEL if draft else DraftMode.NONE, draft_max=4, adaptive=False,
            cross_vocab=cross_vocab,
        ),
    )
    engine.use_prompt_cache(cache)
    return engine


def reply(engine: SpeculativeEngine, messages: list[Message]) -> tuple[DoneEvent, list[str]]:
    events = list(engine.chat(messages, GREEDY))
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done, [e.message for e in events if isinstance(e, NoticeEvent)]


def disk_cache(directory: Path) -> PromptCache:
    return PromptCache(CacheBudget(GIB, 4 * GIB, directory))


@pytest.fixture
def engines() -> Iterator[list[SpeculativeEngine]]:
    made: list[SpeculativeEngine] = []
    yield made
    for engine in made:
        engine.close()


@pytest.fixture(scope="module")
def no_cache_second_turn(real_models) -> DoneEvent:
    """Chat A's second turn read from nothing, with no prompt cache: what every restore must
    reproduce (SmolLM2's Q4_1 kernels give the same logits for any pass shape at one thread)."""
    engine = load(real_models["smollm2"], None, None)
    first, _ = reply(engine, chat_a())
    engine.reset_cache()
    second, _ = reply(engine, chat_a(first.text))
    engine.close()
    assert second.stats.cached_prompt_tokens == 0
    return second


def test_restart_restores_both_models_from_disk_and_replies_the_same(
    tmp_path, real_models, derived_models, engines, no_cache_second_turn
):
    target, draft = real_models["smollm2"], derived_models["smollm2-q4_0"]
    cache = disk_cache(tmp_path)
    engines.append(first_engine := load(target, draft, cache))
    first, _ = reply(first_engine, chat_a())
    first_engine.close()
    cache.close()  # what the app does when it quits
    assert len(list(tmp_path.glob("*.seq"))) == 2  # the target's state and the draft's

    fresh_cache = disk_cache(tmp_path)  # a new process: only the files are left
    engines.append(second_engine := load(target, draft, fresh_cache))
    second, notices = reply(second_engine, chat_a(first.text))
    assert notices == []
    assert second.stats.restored_prompt_tokens >= first.stats.prompt_tokens
    assert second.stats.restore_saved_ms > 0
    assert second.token_ids == no_cache_second_turn.token_ids
    # the draft's state came back too: it read only the new turn
    assert second_engine.draft_model is not None
    assert len(second_engine.draft_model.tokens) > first.stats.prompt_tokens


def test_chat_switch_restores_from_memory_and_replies_the_same(
    real_models, derived_models, engines, no_cache_second_turn
):
    cache = PromptCache(CacheBudget(GIB, 0, None))
    engines.append(engine := load(real_models["smollm2"], derived_models["smollm2-q4_0"], cache))
    first, _ = reply(engine, chat_a())
    other, _ = reply(engine, chat_b())  # another chat takes the live cache
    assert other.stats.restored_prompt_tokens == 0
    second, _ = reply(engine, chat_a(first.text))
    assert second.stats.restored_prompt_tokens >= first.stats.prompt_tokens
    assert second.token_ids == no_cache_second_turn.token_ids
    # back in chat B, then an edit of chat A's first message: what the edit still shares
    # with chat A comes from the cache
    reply(engine, chat_b())
    edited = [Message("user", f"Weather log:\n{DOC}\nWhich station is coldest?")]
    again, _ = reply(engine, edited)
    assert again.stats.restored_prompt_tokens > len(DOC) // 8


def test_cross_vocabulary_demo_pair_restores_target_and_draft_exactly(
    tmp_path, real_models, engines
):
    """Qwen2.5-Coder with SmolLM2 drafting in its own tokens. Qwen's K-quant kernels differ
    between a long prompt pass and short verification passes (README), so the reference is the
    same engine going on with its live cache: a restored state must be that state exactly."""
    target, draft = real_models["qwen"], real_models["smollm2"]
    cache = disk_cache(tmp_path / "live")
    engines.append(live := load(target, draft, cache, cross_vocab=True))
    first, _ = reply(live, chat_a())
    cache.flush()
    shutil.copytree(tmp_path / "live", tmp_path / "after-first-turn")
    want, _ = reply(live, chat_a(first.text))
    engines.append(restarted := load(
        target, draft, disk_cache(tmp_path / "after-first-turn"), cross_vocab=True
    ))
    got, _ = reply(restarted, chat_a(first.text))
    assert got.stats.restored_prompt_tokens >= first.stats.prompt_tokens
    assert got.token_ids == want.token_ids
    assert restarted.draft_model is not None
    assert len(restarted.draft_model.tokens) > first.stats.prompt_tokens // 2


@pytest.mark.parametrize("change", ["another file", "another context size", "another KV type"])
def test_a_state_made_under_other_settings_is_not_used(
    tmp_path, real_models, engines, change
):
    model = real_models["smollm2"]
    cache = disk_cache(tmp_path / "cache")
    engines.append(first := load(model, None, cache))
    done, _ = reply(first, chat_a())
    cache.flush()
    n_ctx = 2048
    if change == "another file":
        model = Path(shutil.copy(model, tmp_path / "copy.gguf"))
    elif change == "another context size":
        n_ctx = 1024
    engines.append(other := load(model, None, None, n_ctx=n_ctx))
    if change == "another KV type":
        other.target.context_params = {**other.target.context_params, "type_k": 8}  # q8_0
    other.use_prompt_cache(disk_cache(tmp_path / "cache"))
    again, _ = reply(other, chat_a())
    assert again.stats.restored_prompt_tokens == 0
    assert again.token_ids == done.token_ids


def read_file(path: Path) -> tuple[dict, np.ndarray, bytes]:
    """A snapshot file's header, tokens and state bytes."""
    blob = path.read_bytes()
    _, n_header = HEAD.unpack(blob[: HEAD.size])
    header = json.loads(blob[HEAD.size : HEAD.size + n_header])
    at = HEAD.size + n_header
    tokens = np.frombuffer(blob[at : at + 4 * header["n_tokens"]], dtype="<i4")
    return header, tokens, blob[at + 4 * header["n_tokens"] :]


def test_a_state_llama_cpp_refuses_is_removed_with_one_notice(tmp_path, real_models, engines):
    """A SmolLM2 state filed, checksum and all, under Qwen's key for Qwen's tokens (a foreign
    state): llama.cpp refuses it, the file goes, the reply is read from scratch, unchanged."""
    cache = disk_cache(tmp_path)
    engines.append(small := load(real_models["smollm2"], None, cache))
    reply(small, chat_a())
    cache.flush()
    (path,) = tmp_path.glob("*.seq")
    header, _, data = read_file(path)
    path.unlink()
    engines.append(big := load(real_models["qwen"], None, None))
    want, _ = reply(big, chat_a())
    big.reset_cache()
    key = model_key(big.target, "target")
    tokens = np.asarray(big.tokenize_chat(chat_a())[:-1], dtype=np.int32)
    forged = Snapshot(key, tokens, bytearray(data), header["ms_per_token"], _file_name(key, tokens))
    (tmp_path / forged.name).write_bytes(_encode_head(forged) + data)
    big.use_prompt_cache(disk_cache(tmp_path))
    got, notices = reply(big, chat_a())
    assert got.token_ids == want.token_ids
    assert got.stats.restored_prompt_tokens == 0
    assert not (tmp_path / forged.name).exists()
    assert len(notices) == 1 and "refused" in notices[0]


def _ask(args: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "specchat", "ask", "--json", *args],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_ask_prompt_cache_across_processes(tmp_path, real_models):
    env = {**os.environ, "SPECCHAT_PROMPT_CACHE_DIR": str(tmp_path / "cache"),
           "SPECCHAT_KEYS_FILE": str(tmp_path / "none.toml"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "app")}
    flags = ["--target", str(real_models["smollm2"]), "--threads", "1", "--n-ctx", "2048",
             "--max-tokens", "16", "--system", f"Weather log:\n{DOC}"]
    first = _ask([*flags, "--prompt-cache", "Which station is warmest?"], env)
    assert first["stats"]["restored_prompt_tokens"] == 0
    assert list((tmp_path / "cache").glob("*.seq"))
    second = _ask([*flags, "--prompt-cache", "Which station is coldest?"], env)
    without = _ask([*flags, "Which station is coldest?"], env)
    assert second["stats"]["restored_prompt_tokens"] > len(DOC) // 8
    assert second["token_ids"] == without["token_ids"]
    assert without["stats"]["restored_prompt_tokens"] == 0
