"""Suffix drafting: propose what followed the longest earlier match of the text's end.

The index covers every token the engine has seen in this conversation (the rendered prompt holds
the earlier turns, both sides, and the reply so far) and is extended token by token, never
rebuilt: two hashed n-gram tables (the last SHORT and LONG tokens -> the positions they ended at,
in order) find earlier occurrences of the context's end in one dictionary look-up; the match is
then extended backwards from each candidate to its full length (capped at MAX_MATCH).

How far to trust a match follows SuffixDecoding (Oliaro et al. 2024): its length, and how often
the same continuation followed equally long matches (support). A proposal runs at most
ALPHA x match length tokens and stops where fewer than MIN_SUPPORT of the equally good matches
agree on the next token. The controller (adaptive.py) then decides how many of those tokens are
worth a batched target pass, from the acceptance this match length has earned so far."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

SHORT = 2  # n-gram length of the fallback table (a match of at least this many tokens)
LONG = 6  # n-gram length of the main table
MAX_MATCH = 64  # a match is not extended backwards further than this
MAX_CANDIDATES = 16  # most recent earlier occurrences examined per proposal
ALPHA = 1.5  # a proposal is at most ALPHA x match length tokens
MIN_SUPPORT = 0.5  # stop where fewer than this share of equally good matches agree


@dataclass(frozen=True)
class SuffixProposal:
    tokens: list[int]
    match_len: int = 0  # tokens of context matched (0: no match)
    support: list[float] = field(default_factory=list)  # per token: share of matches agreeing
    matches: int = 0  # equally good earlier matches (the support's denominator)


NO_PROPOSAL = SuffixProposal([])


class SuffixIndex:
    """The tokens seen so far and where each short and long n-gram ended."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self._tables: dict[int, dict[tuple[int, ...], list[int]]] = {SHORT: {}, LONG: {}}

    def __len__(self) -> int:
        return len(self.tokens)

    def append(self, token: int) -> None:
        toks = self.tokens
        toks.append(token)
        end = len(toks)
        for n, table in self._tables.items():
            if end >= n:
                table.setdefault(tuple(toks[end - n : end]), []).append(end)

    def extend(self, tokens: Sequence[int]) -> None:
        for t in tokens:
            self.append(t)

    def truncate(self, n: int) -> None:
        """Forget every token from position n on (a rollback, or a new prompt)."""
        toks = self.tokens
        for end in range(len(toks), n, -1):
            for size, table in self._tables.items():
                if end >= size:
                    key = tuple(toks[end - size : end])
                    ends = table[key]
                    ends.pop()  # positions are appended in order: this one is the last
                    if not ends:
                        del table[key]
        del toks[n:]

    def sync(self, context: Sequence[int], full: bool = True) -> None:
        """Make the index hold exactly `context`, reusing the common prefix. With full=False
        (within one reply, where the context only grows) a grown context is recognised from its
        last indexed tokens alone."""
        n = len(self.tokens)
        if not full and len(context) >= n and _tail_agrees(self.tokens, context, n):
            self.extend(context[n:])
            return
        keep = 0
        limit = min(n, len(context))
        while keep < limit and self.tokens[keep] == context[keep]:
            keep += 1
        self.truncate(keep)
        self.extend(context[keep:])

    def candidates(self) -> tuple[list[int], int]:
        """Earlier end positions of the context's last LONG (else SHORT) tokens, most recent
        first, and the n-gram length they share."""
        toks = self.tokens
        end = len(toks)
        for n in (LONG, SHORT):
            if end <= n:
                continue
            ends = self._tables[n].get(tuple(toks[end - n :]))
            if not ends:
                continue
            found: list[int] = []
            for e in reversed(ends):
                if e < end:
                    found.append(e)
                    if len(found) >= MAX_CANDIDATES:
                        break
            if found:
                return found, n
        return [], 0

    def match_length(self, e: int, floor: int) -> int:
        """How many tokens before position e equal the context's last tokens (at least
        `floor`, known from the n-gram table)."""
        toks = self.tokens
        end = len(toks)
        m = floor
        while m < MAX_MATCH and e - m - 1 >= 0 and toks[e - m - 1] == toks[end - m - 1]:
            m += 1
        return m

    def propose(self, n: int) -> SuffixProposal:
        """Up to n tokens continuing the longest, best-supported earlier match."""
        if n <= 0:
            return NO_PROPOSAL
        found, floor = self.candidates()
        if not found:
            return NO_PROPOSAL
        lengths = [(self.match_length(e, floor), e) for e in found]
        best_len, best = max(lengths)
        peers = [e for m, e in lengths if 2 * m >= best_len]  # equally good matches
        limit = min(n, math.ceil(ALPHA * best_len), len(self.tokens) - best)
        return self._continue(best, best_len, peers, limit)

    def _continue(self, best: int, best_len: int, peers: list[int], limit: int) -> SuffixProposal:
        toks = self.tokens
        end = len(toks)
        agreeing = list(peers)
        out: list[int] = []
        support: list[float] = []
        for j in range(limit):
            token = toks[best + j]
            agreeing = [e for e in agreeing if e + j < end and toks[e + j] == token]
            share = len(agreeing) / len(peers)
            if share < MIN_SUPPORT:
                break
            out.append(token)
            support.append(share)
        return SuffixProposal(out, best_len, support, len(peers))


def _tail_agrees(indexed: list[int], context: Sequence[int], n: int, window: int = 8) -> bool:
    """Whether the last `window` indexed tokens are where the context has them (a grown context;
    a full prefix check happens only when this fails)."""
    for i in range(max(n - window, 0), n):
        if indexed[i] != context[i]:
            return False
    return n == 0 or n <= window or indexed[0] == context[0]


class SuffixDrafter:
    """Model-free drafting over the conversation: the index follows the context."""

    def __init__(self) -> None:
        self.index = SuffixIndex()

    def reset(self) -> None:
        self.index.truncate(0)

    def begin(self, prompt: Sequence[int]) -> None:
        self.index.sync(prompt, full=True)

    def propose(self, context: Sequence[int], n: int) -> SuffixProposal:
        self.index.sync(context, full=False)
        return self.index.propose(n)
