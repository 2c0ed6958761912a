"""specchat.pair_request: the one layer that turns any front end's choices into engine settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.cli import build_parser
from specchat.commands.model_args import flag_for, pair_request
from specchat.engine.types import DraftMode, GenerationSettings
from specchat.errors import SpecchatError
from specchat.pair_request import PairRequest, resolve_model_request


def test_explicit_paths_need_no_argparse():
    request = resolve_model_request(
        PairRequest(target=Path("t.gguf"), draft=Path("d.gguf"), draft_max=5, n_ctx=512)
    )
    assert request.spec.mode is DraftMode.MODEL and request.spec.draft_max == 5
    assert request.target.n_ctx == request.draft.n_ctx == 512
    assert request.label == "t.gguf"


def test_the_cli_flags_become_a_typed_request():
    args = build_parser().parse_args(
        ["ask", "--target", "t.gguf", "--lookup", "--temperature", "0.5", "--seed", "3",
         "--max-tokens", "9", "hi"]
    )  # fmt: skip
    request = resolve_model_request(pair_request(args))
    assert request.spec.mode is DraftMode.LOOKUP and request.draft is None
    assert request.generation == GenerationSettings(temperature=0.5, seed=3, max_tokens=9)


@pytest.mark.parametrize("command", ["ask", "serve", "bench", "chat"])
def test_every_model_flag_reaches_the_request(command):
    """A flag the parser takes and the request drops would be silently ignored (--suffix-max
    once was): every field of PairRequest comes from the flag of its name."""
    import dataclasses

    args = build_parser().parse_args(
        [command, "--target", "t.gguf", "--draft", "d.gguf", "--draft-max", "5", "--draft-min",
         "2", "--suffix-max", "6", "--p-min", "0.3", "--no-adaptive"]
        + (["hi"] if command == "ask" else [])
    )  # fmt: skip
    choice = pair_request(args)
    for f in dataclasses.fields(PairRequest):
        if f.name != "generation":
            assert getattr(choice, f.name) == getattr(args, f.name), f.name
    spec = resolve_model_request(choice).spec
    assert (spec.draft_max, spec.draft_min, spec.suffix_max, spec.p_min, spec.adaptive) == (
        5, 2, 6, 0.3, False)


@pytest.mark.parametrize(
    "choice, words",
    [
        (PairRequest(target=Path("t.gguf"), draft_max=99), "--draft-max"),
        (PairRequest(draft=Path("d.gguf")), "--draft needs --target"),
        (PairRequest(pair="x", target=Path("t.gguf")), "either --pair or --target"),
        (PairRequest(target=Path("t.gguf"), n_ctx=8), "--n-ctx"),
        (
            PairRequest(target=Path("t.gguf"), generation=GenerationSettings(top_p=0)),
            "--top-p",
        ),
    ],
)
def test_bad_choices_are_one_clear_error(choice, words):
    """Below the front ends errors name settings; the CLI spells them as its flags."""
    with pytest.raises(SpecchatError) as err:
        resolve_model_request(choice)
    assert words in err.value.spelled(flag_for) and "--" not in err.value.message


def test_generation_flags_are_checked_against_the_limits():
    args = build_parser().parse_args(["ask", "--temperature", "-1", "hi"])
    with pytest.raises(SpecchatError, match=r"^temperature must be") as err:
        pair_request(args)
    assert err.value.spelled(flag_for).startswith("--temperature must be")
