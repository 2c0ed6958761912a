"""Suffix drafting: propose what followed the longest earlier match of the text's end.

The index covers every token the engine has seen in this conversation (the rendered prompt holds
the earlier turns, both sides, and the reply so far) and is extended token by token, never
rebuilt: two hashed n-gram tables (the last SHORT and LONG tokens -> the positions they ended at,
in order) find earlier occurrences of the context's end in one dictionary look-up; the match is
then extended backwards from each candidate to its full length (capped at MAX_MATCH).

How far to trust a match follows SuffixDecoding (Oliaro et al. 2024): its length, and how often
the same continuation followed equally long matches (support). A proposal runs at most ALPHA x
match length tokens (no cap once the match is FOLLOW_MATCH tokens long) and stops where fewer
than MIN_SUPPORT of the equally good matches agree on the next token. SuffixTrust then decides
how many of those tokens are worth a batched target pass, from the acceptance this match length
has earned so far and what a pass of that width costs (costs.CostModel). Proposals are free to
make, so they may run to limits.MAX_DRAFT tokens, past the draft model's draft_max: a reply that
copies a whole function is verified in long runs, where a token costs least."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from specchat.engine.speculative.adaptive import ACCEPT_DECAY, MARGIN
from specchat.engine.speculative.costs import CostModel, non_negative
from specchat.engine.types import DrafterCounters, DrafterKind

if TYPE_CHECKING:
    from specchat.engine.speculative.drafting import Draft

SHORT = 2  # n-gram length of the fallback table (a match of at least this many tokens)
LONG = 6  # n-gram length of the main table
MAX_MATCH = 64  # a match is not extended backwards further than this
MAX_CANDIDATES = 16  # most recent earlier occurrences examined per proposal
ALPHA = 1.5  # a proposal is at most ALPHA x match length tokens...
# ...until the match is this long: then it runs as far as the earlier text agrees (SuffixTrust
# has learned how far matches of this length are followed, and cuts it to what pays)
FOLLOW_MATCH = 16
MIN_SUPPORT = 0.5  # stop where fewer than this share of equally good matches agree
# Acceptance per match-length bucket (<4, 4-7, 8-15, 16+ tokens matched), starting from a prior
# worth PRIOR_WEIGHT rounds: a long match in a conversation is usually copied.
BUCKETS = (4, 8, 16)
PRIOR = (0.4, 0.85, 0.95, 0.98)
PRIOR_WEIGHT = 2.0


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
        cap = n if best_len >= FOLLOW_MATCH else math.ceil(ALPHA * best_len)
        limit = min(n, cap, len(self.tokens) - best)
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


def bucket(match_len: int) -> int:
    return sum(1 for edge in BUCKETS if match_len >= edge)


class SuffixTrust:
    """How far suffix proposals are trusted: acceptance per match-length bucket (decayed counts
    over the prior), and what that makes worth verifying at this machine's costs."""

    def __init__(self) -> None:
        self.succ = [0.0] * len(PRIOR)  # decayed accepted tokens
        self.fail = [0.0] * len(PRIOR)  # decayed rounds with a rejection
        # what proposals did, per bucket (reporting, not persisted): proposals, tokens proposed,
        # proposals verified, tokens verified, tokens accepted
        self.log = [[0] * 5 for _ in PRIOR]

    def acceptance(self, match_len: int) -> float:
        """Per-token acceptance suffix drafts of this match length have earned (with the prior)."""
        b = bucket(match_len)
        succ = self.succ[b] + PRIOR[b] * PRIOR_WEIGHT
        fail = self.fail[b] + (1 - PRIOR[b]) * PRIOR_WEIGHT
        return succ / (succ + fail)

    def plan(
        self,
        proposal: SuffixProposal,
        limit: int,
        costs: CostModel,
        beat: float = 0.0,
    ) -> tuple[int, float]:
        """How many tokens of a proposal to verify, and the predicted tokens per target-token
        time: the count with the best predicted rate, 0 unless it beats the target alone by
        MARGIN (and `beat`, another drafter's expected rate). Token i is expected to be kept
        with the acceptance the match length has earned times its support."""
        n_max = min(len(proposal.tokens), limit)
        if n_max <= 0 or costs.t1 is None:
            return 0, 0.0
        a = self.acceptance(proposal.match_len)
        overhead = costs.overhead.estimate or 0.0
        # the line through all widths: one noisy pass at some width must not decide
        best, best_rate = 0, max(MARGIN / (1.0 + overhead), beat)
        expected = chance = 1.0
        for n in range(1, n_max + 1):
            chance *= a * proposal.support[n - 1]
            expected += chance
            rate = expected / (costs.verify_ratio(n + 1, smooth=True) + overhead)
            if rate > best_rate:
                best, best_rate = n, rate
        return best, best_rate if best else 0.0

    def note_proposal(self, match_len: int, proposed: int, sent: int) -> None:
        if proposed:
            row = self.log[bucket(match_len)]
            row[0] += 1
            row[1] += proposed
            row[2] += 1 if sent else 0
            row[3] += sent

    def record(self, match_len: int, drafted: int, accepted: int) -> None:
        b = bucket(match_len)
        self.log[b][4] += accepted
        self.succ[b] = self.succ[b] * ACCEPT_DECAY + accepted
        self.fail[b] = self.fail[b] * ACCEPT_DECAY + (1 if accepted < drafted else 0)

    def snapshot(self) -> dict[str, object]:
        return {"succ": list(self.succ), "fail": list(self.fail)}

    def restore(self, data: Mapping[str, object]) -> bool:
        try:
            succ, fail = data["succ"], data["fail"]
            if not isinstance(succ, list) or not isinstance(fail, list):
                raise TypeError("buckets")
            if len(succ) != len(PRIOR) or len(fail) != len(PRIOR):
                raise ValueError("bucket count")
            self.succ = [non_negative(v) for v in succ]
            self.fail = [non_negative(v) for v in fail]
        except (KeyError, TypeError, ValueError):
            return False
        return True


class SuffixDrafter:
    """Model-free drafting over the conversation: the index follows the context; the trust
    decides how much of each proposal is worth a batched pass."""

    kind = DrafterKind.SUFFIX

    def __init__(self) -> None:
        self.index = SuffixIndex()
        self.trust = SuffixTrust()
        self.counters = DrafterCounters()
        self._match_len = 0  # of the proposal last sent to verification

    def reset(self) -> None:
        self.index.truncate(0)

    def begin(self, prompt: Sequence[int]) -> None:
        self.index.sync(prompt, full=True)

    def propose(self, context: Sequence[int], n: int) -> SuffixProposal:
        self.index.sync(context, full=False)
        return self.index.propose(n)

    def sent(self, proposal: SuffixProposal, n: int) -> None:
        """`n` tokens of `proposal` go to verification (0: none)."""
        self.trust.note_proposal(proposal.match_len, len(proposal.tokens), n)
        if n:
            self._match_len = proposal.match_len

    def accept(self, draft: Draft, accepted: int, round_s: float) -> None:
        """The target kept `accepted` of the proposal last sent."""
        self.counters.accept(len(draft.tokens), accepted, draft.draft_s)
        self.trust.record(self._match_len, len(draft.tokens), accepted)

    def idle(self, round_s: float) -> None:
        pass  # nothing to learn from a round without a proposal
