"""The stats' text, one module for the app, `ask`, the export and the bench: each line from
known numbers, and each drafter kind's acceptance from the same figures everywhere."""

from __future__ import annotations

from specchat.engine.types import DrafterKind, Stats
from specchat.stats_format import (
    ask_line,
    kind_figures,
    kinds_used,
    markdown_line,
    summary_line,
    summary_row,
    totals_line,
)

REPLY = Stats(
    generated_tokens=20, generation_ms=1000.0, tokens_per_second=20.0, ttft_ms=150.0,
    drafted=16, accepted=8, acceptance_rate=0.5, target_passes=10, tokens_per_pass=2.0,
    suffix_drafted=8, suffix_accepted=6, model_drafted=8, model_accepted=2, mode="model",
)  # fmt: skip


def test_kind_figures_suffix_first_and_only_kinds_that_drafted() -> None:
    assert [(f.kind, f.text()) for f in kind_figures(REPLY)] == [
        (DrafterKind.SUFFIX, "75% (6/8)"),
        (DrafterKind.MODEL, "25% (2/8)"),
    ]
    saved = {"model_drafted": 4, "model_accepted": 4, "suffix_drafted": 0}
    assert [f.kind for f in kind_figures(saved)] == [DrafterKind.MODEL]


def test_each_line_from_the_same_figures() -> None:
    assert summary_line(REPLY) == (
        "20.0 tok/s · 20 tokens · acceptance 50% (suffix 75%, model 25%) · 2.00 tok/pass"
        " · TTFT 150 ms"
    )
    assert ask_line(REPLY) == (
        "[20 tokens, 20.0 tok/s, TTFT 150 ms, 2.00 tok/pass, acceptance 50% (8/16),"
        " suffix 75% (6/8), model 25% (2/8), mode model]"
    )
    assert markdown_line(REPLY.to_dict()) == (
        "<sub>20 tokens · 20.0 tok/s · acceptance 50% · 2.0 tokens/pass · TTFT 150 ms</sub>"
    )


def test_chat_totals_sum_the_replies() -> None:
    replies = [REPLY.to_dict(), Stats(generated_tokens=10, generation_ms=1000.0,
                                      target_passes=10, mode="none").to_dict()]  # fmt: skip
    assert kinds_used(replies) == [DrafterKind.SUFFIX, DrafterKind.MODEL]
    assert totals_line(replies) == (
        "2 replies · 30 tokens · 15.0 tok/s overall · acceptance 50% (8/16)"
        " · suffix 75% (6/8) · model 25% (2/8) · 1.50 tok/pass"
    )
    assert summary_row(2, replies[1], kinds_used(replies))[4:7] == ["0/0", "–", "–"]
