"""One home for each limit: the CLI, models.toml, the settings form and the engine agree."""

from __future__ import annotations

import pytest

from specchat.config.schema import PairConfig
from specchat.engine.limits import BOUNDS, MAX_DRAFT, check_settings, violation
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
    ],
)
def test_bounds_edges(name: str, good: float, bad: float) -> None:
    assert violation(name, good) is None
    assert violation(name, bad) is not None


def test_integer_settings_reject_fractions() -> None:
    assert violation("top_k", 2.5) == "must be a whole number"


def test_cli_spelling_names_the_flag() -> None:
    with pytest.raises(SpecchatError, match=r"^--top-p must be in \(0, 1\]"):
        check_settings(generation=GenerationSettings(top_p=0.0), spell="--{flag}")
    with pytest.raises(SpecchatError, match=r"--draft-min .* exceeds --draft-max"):
        check_settings(spec=SpecSettings(draft_max=2, draft_min=3), spell="--{flag}")


def test_models_toml_takes_the_same_largest_draft_as_the_cli() -> None:
    target = {"path": "t.gguf"}
    assert PairConfig(target=target, draft_max=MAX_DRAFT).draft_max == MAX_DRAFT  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="draft_max"):
        PairConfig(target=target, draft_max=MAX_DRAFT + 1)  # type: ignore[arg-type]


def test_settings_form_uses_the_engine_bounds() -> None:
    assert set(NUMERIC) <= set(BOUNDS)
    assert parse_settings("", {"draft_max": str(MAX_DRAFT)}, "default").draft_max == MAX_DRAFT
    with pytest.raises(ValueError, match="draft max"):
        parse_settings("", {"draft_max": str(MAX_DRAFT + 1)}, "default")
    with pytest.raises(ValueError, match="top-p"):
        parse_settings("", {"top_p": "0"}, "default")
