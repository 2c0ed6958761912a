"""Fitting a conversation into the context: one rule, used by the engine and by the app's
context meter (which forecasts what the engine will drop)."""

from __future__ import annotations

from collections.abc import Sequence

from specchat.engine.types import Message

# When turns must be dropped to fit the context, the prompt is cut to this share of what the
# context leaves it, so that the next turns fit behind the same (cached) prefix.
REFILL_SHARE = 0.5


def prompt_budget(n_ctx: int, max_tokens: int) -> int:
    """What the prompt may take: the context less room for the reply (at most a quarter)."""
    return n_ctx - min(max_tokens, n_ctx // 4)


def drop_oldest_turn(msgs: list[Message]) -> list[Message]:
    """Remove and return the oldest turn (a user message and the assistant reply after it);
    nothing when only the last message is left (system messages always stay)."""
    first = next((i for i, m in enumerate(msgs) if m.role != "system"), None)
    if first is None or first >= len(msgs) - 1:
        return []
    count = 2 if first + 1 < len(msgs) - 1 and msgs[first + 1].role == "assistant" else 1
    turn = msgs[first : first + count]
    del msgs[first : first + count]
    return turn


def drop_prefix(msgs: list[Message], before: Sequence[Message]) -> bool:
    """Remove `before` when the conversation (after its system messages) starts with it and
    more than it; True when it did."""
    first = next((i for i, m in enumerate(msgs) if m.role != "system"), len(msgs))
    n = len(before)
    if n == 0 or len(msgs) - first <= n or msgs[first : first + n] != list(before):
        return False
    del msgs[first : first + n]
    return True
