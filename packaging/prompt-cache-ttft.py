"""Time to first token on a ~3,000-token chat with the demo pair: cold, warm (same chat, next
turn), after a chat switch, after a restart (new engine and prompt cache, states from disk),
plus state sizes and save/restore times (docs/prompt-cache.md has the figures it printed).
Run: PYTHONPATH=app python packaging/prompt-cache-ttft.py [THREADS] (default 1)."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

from specchat.config.registry import load_registry
from specchat.config.settings import to_pair_settings, to_spec_settings
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.llama.prompt_cache import CacheBudget, PromptCache
from specchat.engine.types import DoneEvent, GenerationSettings, Message, NoticeEvent
from specchat.sources import resolve_model

GIB = 2**30
GEN = GenerationSettings(max_tokens=8)
ROWS = [f"| {i:>3} | sensor-{i * 37 % 101:03d} | {i * 7 % 13:>2} C | {i * 5 % 11:>2} m/s |"
        for i in range(1, 128)]


def long_chat(turns: int) -> list[Message]:
    """A chat whose earlier turns paste log tables; ~3,000 tokens of the target's."""
    msgs: list[Message] = []
    per = len(ROWS) // turns
    for t in range(turns):
        table = "\n".join(ROWS[t * per : (t + 1) * per])
        msgs += [Message("user", f"Log part {t + 1}:\n{table}\nAny sensor above 10 C?"),
                 Message("assistant", f"Yes: part {t + 1} has readings above 10 C.")]
    return msgs


def ttft(engine: SpeculativeEngine, msgs: list[Message]) -> tuple[float, DoneEvent]:
    events = list(engine.chat(msgs, GEN))
    for event in events:
        if isinstance(event, NoticeEvent):
            print(f"  notice: {event.message}")
    done = events[-1]
    assert isinstance(done, DoneEvent)
    draft = engine.draft_model
    print(f"  (draft holds {len(draft.tokens) if draft else 0} tokens, "
          f"mode {done.stats.mode}, drafted {done.stats.drafted})")
    return done.stats.ttft_ms, done


def main() -> None:
    pair = load_registry(None).get("demo")
    assert pair.draft is not None
    target_s, draft_s = to_pair_settings(
        pair, resolve_model(pair.target, progress=False), resolve_model(pair.draft, progress=False)
    )
    # one thread, as the chat app uses on a 2-core machine (loader.leave_a_core): two threads
    # spin against each other and against anything else running
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    target_s = dataclasses.replace(target_s, n_threads=threads)
    draft_s = dataclasses.replace(draft_s, n_threads=threads)
    directory = Path(tempfile.mkdtemp(prefix="prompt-cache-"))
    # what the draft-length controller learned is kept between runs, as the app keeps it: a
    # restarted engine drafts (or not) as the one before it did
    spec = dataclasses.replace(to_spec_settings(pair), learned_path=directory / "learned.json")

    def engine(cache: PromptCache | None) -> SpeculativeEngine:
        e = SpeculativeEngine.load(target_s, draft_s, spec)
        e.use_prompt_cache(cache)
        return e

    chat = long_chat(6)
    ask = [*chat, Message("user", "Which part had the warmest sensor?")]
    cold_engine = engine(None)
    cold, done = ttft(cold_engine, ask)
    print(f"prompt tokens {done.stats.prompt_tokens}")
    print(f"cold (no cache, whole chat read): TTFT {cold:.0f} ms")
    cold_engine.close()

    cache = PromptCache(CacheBudget(4 * GIB, 8 * GIB, directory))
    e = engine(cache)
    _, first = ttft(e, ask)  # reads the chat once, saves both states
    turn = [*ask, Message("assistant", first.text), Message("user", "And the coldest?")]
    warm, wdone = ttft(e, turn)
    print(f"warm (same chat, next turn, live cache): TTFT {warm:.0f} ms")
    # each turn goes on from the reply the model gave, as in the app
    turn2 = [*turn, Message("assistant", wdone.text), Message("user", "And the windiest?")]
    other = [Message("user", "Write a haiku about sensors. " + "\n".join(ROWS[:40]))]
    ttft(e, other)  # another chat takes the live caches
    switch, sdone = ttft(e, turn2)
    print(f"after a chat switch (memory): TTFT {switch:.0f} ms, "
          f"{sdone.stats.restored_prompt_tokens} tokens restored, "
          f"~{sdone.stats.restore_saved_ms / 1000:.1f} s saved")
    sizes = {m: (len(m.tokens), len(m.save_state())) for m in (e.target, e.draft_model)}
    for model, (n, size) in sizes.items():
        if not n:
            continue
        t0 = time.perf_counter()
        data = model.save_state()
        t1 = time.perf_counter()
        model.load_state(data, list(model.tokens))
        t2 = time.perf_counter()
        print(f"{model.path.name}: {n} tokens, state {size / 1e6:.1f} MB "
              f"({size / n * 1000 / 1e6:.2f} MB per 1,000 tokens), save {1000 * (t1 - t0):.0f} ms, "
              f"restore {1000 * (t2 - t1):.0f} ms, reading {model.read_ms_per_token:.2f} ms/token")
    e.close()
    cache.close()
    on_disk = sum(p.stat().st_size for p in directory.glob("*.seq"))
    print(f"disk: {on_disk / 1e6:.1f} MB in {len(list(directory.glob('*.seq')))} files")

    restarted_cache = PromptCache(CacheBudget(4 * GIB, 8 * GIB, directory))
    e2 = engine(restarted_cache)
    turn3 = [*turn2, Message("assistant", sdone.text), Message("user", "Thanks. Summarize.")]
    restart, rdone = ttft(e2, turn3)
    print(f"after a restart (new engine, states from disk): TTFT {restart:.0f} ms, "
          f"{rdone.stats.restored_prompt_tokens} tokens restored")
    e2.close()
    restarted_cache.close()
    shutil.rmtree(directory)
    print(f"ratios: switch/warm {switch / warm:.2f}, restart/warm {restart / warm:.2f}, "
          f"cold/switch {cold / switch:.1f}, cold/restart {cold / restart:.1f}")


if __name__ == "__main__":
    main()
