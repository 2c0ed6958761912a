"""A 500 tokens/s reply streams without lag: no dropped batches, none shown late."""

from __future__ import annotations

import gc
import os
import time

from specchat.engine.types import GenerationSettings, Message
from specchat.tui import SpecchatApp
from specchat.tui.conversation import LATE_SECONDS
from specchat.tui.widgets import MessageBox

from .conftest import ready, send
from .fake_engine import FakeEngine, scripted

PARAGRAPH = (
    "Speculative decoding lets a small draft model propose tokens that the target verifies "
    "in one pass, so the **answer** is unchanged but arrives sooner.\n\n"
    "```python\ndef add(a, b):\n    return a + b\n```\n\n"
)


def contention() -> float:
    """How oversubscribed the CPUs are right now (1 = not at all). Other processes running
    alongside (parallel test runs, compiles) slow the UI down; thresholds scale with this."""
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


async def test_500_tokens_per_second_reply_displays_without_lag(make_app) -> None:
    # Timing on a shared machine is noisy: a second try, on a fresh app, must show no lag if the
    # first did not; what was shown must be complete on every try.
    lags: list[str] = []
    for _ in range(2):
        lag = await _one_reply(make_app)
        if lag is None:
            return
        lags.append(lag)
    raise AssertionError("the reply lagged on both tries: " + "; ".join(lags))


async def _one_reply(make_app) -> str | None:
    tokens = scripted(PARAGRAPH * 30)[:500]
    expected = "".join(t for t, _ in tokens)
    engine = FakeEngine(reply=lambda m: tokens, token_delay=1 / 500)
    baseline = FakeEngine(reply=lambda m: tokens, token_delay=1 / 500)
    list(baseline.chat([Message("user", "stream fast")], GenerationSettings()))  # no UI
    app = make_app(engine)
    # earlier tests leave a large heap in this process; keep the collector from walking it
    # during the measurement (a real app process does not carry it)
    gc.collect()
    gc.freeze()
    try:
        return await _measure(app, engine, baseline, expected)
    finally:
        gc.unfreeze()


async def _measure(
    app: SpecchatApp, engine: FakeEngine, baseline: FakeEngine, expected: str
) -> str | None:
    """None when the reply streamed without lag, else what lagged."""
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready(pilot)
        started = time.monotonic()
        await send(pilot, "stream fast")
        elapsed = time.monotonic() - started
        report = screen.last_report
        box = screen.query(MessageBox).last()
        assert box.text == expected  # nothing dropped
        assert report.tokens == 500 and report.missing_batches == 0
        # batched (about every 50 ms), not one UI update per token, and progressive
        assert 5 <= report.batches <= 500 / 5, report
        load = contention()
        late = sum(1 for lag in report.latencies if lag > LATE_SECONDS * load)
        # decoding never waited on rendering (measured against the same fake without a UI),
        # and the display caught up right after the last token
        decoding, alone = engine.durations[-1], baseline.durations[-1]
        print(f"decoding {decoding:.2f}s (alone {alone:.2f}s), shown after {elapsed:.2f}s,")
        print(f"{report.batches} batches, max latency {report.max_latency:.2f}s, load x{load:.1f}")
        if late:
            return f"{late} batches shown late ({report}, load x{load:.1f})"
        if decoding >= 2 * alone * load:
            return f"decoding took {decoding:.2f}s, {alone:.2f}s without a UI (load x{load:.1f})"
        if elapsed - decoding >= 2 * LATE_SECONDS * load:
            return f"shown {elapsed - decoding:.2f}s after the last token (load x{load:.1f})"
        return None
