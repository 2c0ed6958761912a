"""What the controller learned, kept between runs (engine/speculative/learned.py, adaptive
snapshots)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from specchat.engine.speculative.costs import CostModel
from specchat.engine.speculative.drafting import DrafterChain, build_chain
from specchat.engine.speculative.learned import MAX_ENTRIES, LearnedStore, learned_key
from specchat.engine.types import SpecSettings

from .test_chain import ScriptedModel


def trained() -> DrafterChain:
    """A chain that drafted a few rounds: costs, the model's acceptance and the suffix's trust."""
    chain = build_chain(SpecSettings(), ScriptedModel(), CostModel())
    chain.costs.seed({1: 0.1, 3: 0.2, 9: 0.5}, 0.04, 0.01)
    assert chain.model is not None and chain.suffix is not None
    ctrl = chain.model.controller
    for _ in range(3):
        k = ctrl.next_k(8)
        chain.costs.record_pass(k + 1, 0.3)
        ctrl.record(drafted=k, accepted=1, draft_s=0.04 * k, round_s=0.4)
    chain.suffix.trust.record(25, 6, 6)
    return chain


def test_a_snapshot_restores_what_was_learned() -> None:
    old = trained()
    data = json.loads(json.dumps(old.snapshot()))  # through JSON, as on disk
    new = build_chain(SpecSettings(), ScriptedModel(), CostModel())
    assert new.restore(data)
    assert new.model is not None and old.model is not None
    assert new.suffix is not None and old.suffix is not None
    assert new.costs.ratio.keys() == old.costs.ratio.keys()
    assert new.costs.draft.values == old.costs.draft.values and new.costs.draft.stale
    ctrl, was = new.model.controller, old.model.controller
    assert ctrl.acceptance == was.acceptance and ctrl._explored == was._explored
    assert new.suffix.trust.acceptance(25) == old.suffix.trust.acceptance(25)
    assert ctrl.next_k(8) == was.best_k(8)  # no exploration from scratch


def test_a_bad_snapshot_changes_nothing() -> None:
    fresh = build_chain(SpecSettings(), ScriptedModel(), CostModel())
    good = trained().snapshot()
    for bad in ({}, {**good, "version": 99}, {**good, "version": 1},
                {**good, "model": {**good["model"], "succ": -1.0}},  # type: ignore[dict-item]
                {**good, "suffix": {"succ": [1.0], "fail": [0.0]}},
                {**good, "costs": {**good["costs"], "one": "fast"}}):  # type: ignore[dict-item]
        chain = build_chain(SpecSettings(), ScriptedModel(), CostModel())
        assert not chain.restore(bad)
        assert chain.model is not None and fresh.model is not None
        assert chain.model.controller.snapshot() == fresh.model.controller.snapshot()
        assert chain.suffix is not None and fresh.suffix is not None
        assert chain.suffix.trust.snapshot() == fresh.suffix.trust.snapshot()


def test_store_round_trip_and_bad_files(tmp_path: Path) -> None:
    store = LearnedStore(tmp_path / "sub" / "learned.json")
    assert store.load("k") is None  # no file yet
    assert store.save("k", {"a": 1})
    assert LearnedStore(store.path).load("k") == {"a": 1}
    store.path.write_text("{not json")
    assert store.load("k") is None
    assert store.save("k", {"a": 2}) and store.load("k") == {"a": 2}  # a bad file is replaced
    store.path.write_text("[1, 2]")
    assert store.load("k") is None


def test_store_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = LearnedStore(blocker / "learned.json")  # its folder is a file
    assert not store.save("k", {"a": 1})
    assert store.load("k") is None


def test_store_keeps_the_newest_entries(tmp_path: Path) -> None:
    store = LearnedStore(tmp_path / "learned.json")
    for i in range(MAX_ENTRIES + 3):
        store.save(f"k{i}", {"i": i})
    data = json.loads(store.path.read_text())
    assert len(data) == MAX_ENTRIES and "k0" not in data and f"k{MAX_ENTRIES + 2}" in data


def test_key_follows_model_files_backend_and_threads(tmp_path: Path) -> None:
    target, draft = tmp_path / "t.gguf", tmp_path / "d.gguf"
    target.write_bytes(b"GGUF1")
    draft.write_bytes(b"GGUF2")
    key = learned_key(target, draft, "CPU", 2)
    assert key == learned_key(target, draft, "CPU", 2)
    assert key != learned_key(target, None, "CPU", 2)
    assert key != learned_key(target, draft, "CUDA", 2)
    assert key != learned_key(target, draft, "CPU", 4)
    assert key != learned_key(target, draft, "CPU", 2, cross_vocab=True)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # the file changed
    assert key != learned_key(target, draft, "CPU", 2)
