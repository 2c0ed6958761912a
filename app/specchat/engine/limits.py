"""One home for every bound on a generation, speculation or model-loading setting.

The CLI, models.toml, the chat app's settings form, the server and the engine all check values
against this table, so a value one front end accepts is accepted by all of them. Errors name a
setting by its models.toml key and carry it (SpecchatError.settings): front ends re-spell it (the
CLI as its flag)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from specchat.engine.types import GenerationSettings, SpecSettings
from specchat.errors import SpecchatError

# Batched logits drift from one-token logits beyond ~33 tokens on CPU builds (README), so a draft
# never proposes more than this many tokens per target pass.
MAX_DRAFT = 32


@dataclass(frozen=True)
class Bound:
    low: float
    high: float = math.inf
    low_open: bool = False  # the low end itself is not allowed
    high_open: bool = False
    integer: bool = False

    def allows(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        if self.high == math.inf:
            return f"must be {'more than' if self.low_open else 'at least'} {self.low:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"must be in {left}{self.low:g}, {self.high:g}{right}"


BOUNDS: dict[str, Bound] = {
    "temperature": Bound(0.0, 10.0),  # 0 = greedy
    "top_k": Bound(0, 1_000_000, integer=True),  # 0 = off
    "top_p": Bound(0.0, 1.0, low_open=True),  # 1 = off
    "min_p": Bound(0.0, 1.0, high_open=True),  # 0 = off
    "seed": Bound(0, 2**63 - 1, integer=True),  # numpy's generator takes no negative seed
    "max_tokens": Bound(1, 1_000_000, integer=True),
    "draft_max": Bound(1, MAX_DRAFT, integer=True),
    "draft_min": Bound(0, MAX_DRAFT, integer=True),
    "suffix_max": Bound(1, MAX_DRAFT, integer=True),
    "p_min": Bound(0.0, 1.0),
    "n_ctx": Bound(16, integer=True),  # below this not even a short chat fits
    "n_threads": Bound(1, integer=True),
}


def violation(name: str, value: float | None) -> str | None:
    """Why `value` is not allowed for setting `name` (None: it is allowed, or unset)."""
    if value is None:
        return None
    bound = BOUNDS[name]
    if bound.integer and (isinstance(value, bool) or value != int(value)):
        return "must be a whole number"
    if not bound.allows(value):
        return f"{bound.describe()} (got {value:g})"
    return None


def check_value(name: str, value: float | None) -> None:
    """Raise SpecchatError naming the setting when `value` is out of bounds."""
    why = violation(name, value)
    if why is not None:
        raise SpecchatError(f"{name} {why}", settings=(name,))


def draft_order(draft_min: int, draft_max: int) -> str | None:
    """Why draft_min and draft_max cannot go together (None: they can)."""
    if draft_min > draft_max:
        return f"draft_min ({draft_min}) exceeds draft_max ({draft_max})"
    return None


def check_settings(
    generation: GenerationSettings | None = None, spec: SpecSettings | None = None
) -> None:
    """Raise SpecchatError for the first setting out of bounds."""
    values: dict[str, float | None] = {}
    if generation is not None:
        values.update(
            temperature=generation.temperature,
            top_k=generation.top_k,
            top_p=generation.top_p,
            min_p=generation.min_p,
            seed=generation.seed,
            max_tokens=generation.max_tokens,
        )
    if spec is not None:
        values.update(draft_max=spec.draft_max, draft_min=spec.draft_min, p_min=spec.p_min,
                      suffix_max=spec.suffix_max)
    for name, value in values.items():
        check_value(name, value)
    order = draft_order(spec.draft_min, spec.draft_max) if spec is not None else None
    if order is not None:
        raise SpecchatError(order, settings=("draft_min", "draft_max"))
