"""One home for each limit: the CLI, models.toml, the settings form and the engine agree."""

from __future__ import annotations

import re

import pytest

from specchat.commands.model_args import flag_for
from specchat.config.schema import ModelConfig, PairConfig
from specchat.engine.limits import BOUNDS, MAX_DRAFT, check_settings, check_value, violation
from specchat.engine.types import GenerationSettings, SpecSettings
from specchat.errors import SpecchatError
from specchat.tui.screens.settings import NUMERIC, parse_settings


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("temperature", 0.0, -0.1),
        ("top_p", 1.0, 0.0),
        ("min_p", 0.0, 1.0),
        ("seed", 0, -1),
        ("max_tokens", 1, 0),
        ("draft_max", MAX_DRAFT, MAX_DRAFT + 1),
        ("draft_min", 0, -1),
        ("p_min", 1.0, 1.5),
        ("n_ctx", 16, 15),
        ("n_threads", 1, 0),
    ],
)
def test_bounds_edges(name: str, good: float, bad: float) -> None:
    assert violation(name, good) is None
    assert violation(name, bad) is not None


def test_integer_settings_reject_fractions() -> None:
    assert violation("top_k", 2.5) == "must be a whole number"


def test_errors_name_the_setting_and_the_cli_spells_its_flag() -> None:
    with pytest.raises(SpecchatError, match=r"^top_p must be in \(0, 1\]") as err:
        check_settings(generation=GenerationSettings(top_p=0.0))
    assert err.value.spelled(flag_for).startswith("--top-p must be in (0, 1]")
    with pytest.raises(SpecchatError, match=r"draft_min .* exceeds draft_max") as err:
        check_settings(spec=SpecSettings(draft_max=2, draft_min=3))
    assert err.value.spelled(flag_for) == "--draft-min (3) exceeds --draft-max (2)"
    with pytest.raises(SpecchatError) as err:
        check_value("n_threads", 0)
    assert err.value.spelled(flag_for) == "--threads must be at least 1 (got 0)"


def test_spelling_leaves_file_names_alone() -> None:
    error = SpecchatError("n_ctx.gguf: n_ctx must be at least 16", settings=("n_ctx",))
    assert error.spelled(flag_for) == "n_ctx.gguf: --n-ctx must be at least 16"


def test_models_toml_takes_the_same_largest_draft_as_the_cli() -> None:
    target = {"path": "t.gguf"}
    assert PairConfig(target=target, draft_max=MAX_DRAFT).draft_max == MAX_DRAFT  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="draft_max"):
        PairConfig(target=target, draft_max=MAX_DRAFT + 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "bad"), [("n_ctx", 0), ("n_ctx", 15), ("n_threads", 0)])
def test_models_toml_takes_the_same_load_settings_as_the_cli(name: str, bad: int) -> None:
    why = violation(name, bad)
    assert why is not None
    with pytest.raises(ValueError, match=re.escape(why)):
        ModelConfig(path="t.gguf", **{name: bad})  # type: ignore[arg-type]
    with pytest.raises(SpecchatError):
        check_value(name, bad)


def test_settings_form_uses_the_engine_bounds() -> None:
    assert set(NUMERIC) <= set(BOUNDS)
    assert parse_settings("", {"draft_max": str(MAX_DRAFT)}, "default").draft_max == MAX_DRAFT
    with pytest.raises(ValueError, match="draft max"):
        parse_settings("", {"draft_max": str(MAX_DRAFT + 1)}, "default")
    with pytest.raises(ValueError, match="top-p"):
        parse_settings("", {"top_p": "0"}, "default")
