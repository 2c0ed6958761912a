"""Summaries, the JSON document, the table and the plot, from synthetic run records."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest
from rich.console import Console

from specchat.bench.report import PLOT_HINT, build_table, physics_line, write_plot
from specchat.bench.results import ModeSpecInfo, Physics, RunRecord, summarize, to_json_doc
from specchat.errors import SpecchatError

PHYSICS = Physics(target_token_ms=80.0, draft_token_ms=8.0, c=0.1,
                  b={1: 1.0, 2: 1.8, 3: 2.5, 4: 3.0, 5: 3.5})
MODES = [ModeSpecInfo("target", "target"), ModeSpecInfo("k=4", "fixed", 4),
         ModeSpecInfo("adaptive", "adaptive")]
IDS = (5, 6, 7, 8, 9, 10, 11, 12)


def _records() -> list[RunRecord]:
    recs = []
    for rnd, (base, fast) in enumerate([(10.0, 13.0), (12.0, 18.0)]):
        recs.append(RunRecord("target", rnd, "p", IDS, base, 100.0, stats={"drafted": 0}))
        recs.append(RunRecord("k=4", rnd, "p", IDS, fast, 120.0, passes=((4, 4), (4, 2)),
                              stats={"target_passes": 3}, peak_rss_mb=500.0 + rnd))
        ids = IDS if rnd == 0 else (*IDS[:-1], 99)  # second adaptive run diverges
        recs.append(RunRecord("adaptive", rnd, "p", ids, base, 110.0, passes=((4, 4),)))
    return recs


def test_summarize() -> None:
    target, k4, adaptive = summarize(MODES, _records(), PHYSICS)
    assert target.speedup is not None and target.speedup.median == 1.0
    assert target.predicted_speedup == 1.0 and target.identity == 1.0
    assert k4.speedup is not None
    assert (k4.speedup.low, k4.speedup.high) == pytest.approx((1.3, 1.5))
    assert k4.speedup.median == pytest.approx(1.4)
    assert k4.acceptance_rate == pytest.approx(12 / 16)
    assert k4.alpha == pytest.approx(12 / 14)  # 12 accepted, 2 rejections
    assert k4.tokens_per_pass == pytest.approx(16 / 6)  # the engine's target_passes
    a = 12 / 14
    assert k4.predicted_speedup == pytest.approx((1 - a**5) / ((1 - a) * (4 * 0.1 + 3.5)))
    assert k4.peak_rss_mb == 501.0
    assert k4.acceptance_by_position == [1.0, 1.0, 0.5, 1.0]
    assert (adaptive.identical, adaptive.compared) == (1, 2)
    # adaptive is predicted from the pair's alpha (the fixed lengths'), not its own 1.0
    best = max((1 - a ** (k + 1)) / ((1 - a) * (k * 0.1 + PHYSICS.b[k + 1])) for k in (1, 2, 3, 4))
    assert adaptive.alpha == 1.0
    assert adaptive.predicted_speedup == pytest.approx(max(1.0, best))


def test_prediction_is_the_median_of_per_run_predictions() -> None:
    """Prompts differ in acceptance; the prediction is summarized like the measurement (median
    over runs), each run predicted at its own α, not at one pooled α."""
    def pred(a: float) -> float:
        return (1 - a**5) / ((1 - a) * (4 * 0.1 + 3.5)) if a < 1 else 5 / (4 * 0.1 + 3.5)

    recs = []
    for rnd, passes in enumerate([((4, 4),) * 3, ((4, 0),) * 3, ((4, 1),) * 3]):
        recs.append(RunRecord("target", rnd, "p", IDS, 10.0, 100.0))
        recs.append(RunRecord("k=4", rnd, "p", IDS, 10.0, 100.0, passes=passes))
    _, k4, _ = summarize(MODES, recs, PHYSICS)
    assert k4.predicted_speedup == pytest.approx(pred(0.5))  # the runs' α: 1, 0, 0.5
    pooled = 15 / 21  # 15 accepted, 6 rejections
    assert k4.alpha == pytest.approx(pooled) and pred(pooled) > pred(0.5)


def test_json_document_schema() -> None:
    recs = _records()
    summaries = summarize(MODES, recs, PHYSICS)
    doc = json.loads(json.dumps(to_json_doc({"rounds": 2}, PHYSICS, summaries, recs, ["n"])))
    assert set(doc) == {"schema", "settings", "physics", "modes", "runs", "notes"}
    assert doc["physics"]["c"] == 0.1 and doc["physics"]["b"]["5"] == 3.5
    mode = doc["modes"][1]
    for key in ("mode", "kind", "k", "runs", "tokens_per_second", "speedup", "ttft_ms",
                "acceptance_rate", "alpha", "tokens_per_pass", "greedy_identity",
                "predicted_speedup", "peak_rss_mb", "acceptance_by_position"):
        assert key in mode
    assert set(mode["speedup"]) == {"median", "min", "max", "n"}
    assert doc["modes"][2]["greedy_identity"] == 0.5
    run = doc["runs"][0]
    assert run["token_ids"] == list(IDS) and run["mode"] == "target" and run["round"] == 0


def test_table_shows_every_mode_and_flags_divergence() -> None:
    console = Console(record=True, width=200)
    console.print(build_table(summarize(MODES, _records(), PHYSICS), "title"))
    text = console.export_text()
    for word in ("mode", "speedup", "predicted", "identical", "k=4", "adaptive", "1/2", "2/2"):
        assert word in text
    assert "1.40× (1.30–1.50)" in text
    line = physics_line(PHYSICS)
    assert "c=0.100" in line and "b(5)=3.50" in line and "80.0 ms/token" in line


def test_plot_is_written_with_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "bench.png"
    write_plot(out, summarize(MODES, _records(), PHYSICS))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(SpecchatError) as err:
        write_plot(tmp_path / "x.png", summarize(MODES, _records(), PHYSICS))
    assert err.value.message == PLOT_HINT
    assert not (tmp_path / "x.png").exists()



def test_sampled_runs_are_not_compared_token_for_token() -> None:
    for s in summarize(MODES, _records(), PHYSICS, greedy=False):
        assert s.compared == 0 and s.identity is None


def test_peers_are_compared_with_their_own_baseline() -> None:
    modes = [ModeSpecInfo("target", "target"),
             ModeSpecInfo("peer target", "peer", identity_ref=None),
             ModeSpecInfo("peer fast", "peer", 4, baseline="peer target",
                          identity_ref="peer target"),
             ModeSpecInfo("native", "peer", 4, baseline="peer target", identity_ref=None)]
    other = (1, 2, 3)
    recs = [RunRecord("target", 0, "p", IDS, 10.0, 1.0),
            RunRecord("peer target", 0, "p", other, 8.0, 1.0),
            RunRecord("peer fast", 0, "p", other, 12.0, 1.0),
            RunRecord("native", 0, "p", None, 16.0, None)]
    _, base, fast, native = summarize(modes, recs, PHYSICS)
    assert base.compared == 0 and base.speedup is not None and base.speedup.median == 0.8
    assert (fast.identical, fast.compared) == (1, 1) and fast.speedup.median == 1.5  # type: ignore[union-attr]
    assert native.compared == 0 and native.ttft_ms is None and native.speedup.median == 2.0  # type: ignore[union-attr]
