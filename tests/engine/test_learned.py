"""What the controller learned, kept between runs (engine/learned.py, adaptive snapshots)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from specchat.engine.adaptive import DraftLengthController
from specchat.engine.learned import MAX_ENTRIES, LearnedStore, learned_key


def trained() -> DraftLengthController:
    ctrl = DraftLengthController(draft_max=8)
    ctrl.seed({1: 0.1, 3: 0.2, 9: 0.5}, 0.04, 0.01)
    for _ in range(3):
        ctrl.next_k(8)
        ctrl.record(drafted=ctrl.last_k, accepted=1, draft_s=0.04 * ctrl.last_k, verify_s=0.3,
                    round_s=0.4)
    ctrl.record(drafted=6, accepted=6, draft_s=0.0, verify_s=0.4, round_s=0.4, kind="suffix",
                match_len=25)
    return ctrl


def test_a_snapshot_restores_what_was_learned() -> None:
    old = trained()
    data = json.loads(json.dumps(old.snapshot()))  # through JSON, as on disk
    new = DraftLengthController(draft_max=8)
    assert new.restore(data)
    assert new.t_verify == old.t_verify and new.t_draft == old.t_draft
    assert new.acceptance == old.acceptance and new._explored == old._explored
    assert new.suffix_acceptance(25) == old.suffix_acceptance(25)
    assert new.next_k(8) == old.best_k(8)  # no exploration from scratch


def test_a_bad_snapshot_changes_nothing() -> None:
    fresh = DraftLengthController(draft_max=8)
    good = trained().snapshot()
    for bad in ({}, {**good, "version": 99}, {**good, "t_draft": "fast"},
                {**good, "t_verify": {"x": 1.0}}, {**good, "suffix_succ": [1.0]},
                {**good, "overhead": float("nan")}, {**good, "succ": -1.0}):
        ctrl = DraftLengthController(draft_max=8)
        assert not ctrl.restore(bad)
        assert ctrl.snapshot() == fresh.snapshot()


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
