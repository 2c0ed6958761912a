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

import dataclasses
import math
from array import array
from collections import deque
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
# The copy cursor (an edit that copies a long stretch with a word changed here and there): after
# a match of at least CURSOR_RUN tokens, a token of the target's own where the earlier text had
# another is taken as a substitution, and copying resumes right after it; the substitution is
# applied to later occurrences too (a rename). CURSOR_MISSES rounds in a row without an agreeing
# token end it (the target is writing something new).
CURSOR_RUN = 8
CURSOR_MISSES = 2


@dataclass(frozen=True)
class SuffixProposal:
    tokens: list[int]
    match_len: int = 0  # tokens of context matched (0: no match)
    support: list[float] = field(default_factory=list)  # per token: share of matches agreeing
    matches: int = 0  # equally good earlier matches (the support's denominator)
    from_history: bool = False  # found in earlier requests (SuffixHistory), not this context
    start: int = -1  # where the tokens were found in the conversation's index (-1: elsewhere)
    via_cursor: bool = False  # the copy cursor's: the match resumed past a substitution


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
        return _follow(self.tokens, best, best_len, peers, limit)


def _follow(
    toks: Sequence[int], best: int, best_len: int, peers: list[int], limit: int, **extra: bool
) -> SuffixProposal:
    """Up to `limit` tokens from position `best` on, while MIN_SUPPORT of the equally good
    matches (`peers`, positions in the same `toks`) agree; a negative token (SuffixHistory's
    boundary between stored requests) ends it."""
    end = len(toks)
    agreeing = list(peers)
    out: list[int] = []
    support: list[float] = []
    for j in range(min(limit, end - best)):
        token = toks[best + j]
        if token < 0:
            break
        agreeing = [e for e in agreeing if e + j < end and toks[e + j] == token]
        share = len(agreeing) / len(peers)
        if share < MIN_SUPPORT:
            break
        out.append(token)
        support.append(share)
    return SuffixProposal(out, best_len, support, len(peers), start=best, **extra)


def _tail_agrees(indexed: list[int], context: Sequence[int], n: int, window: int = 8) -> bool:
    """Whether the last `window` indexed tokens are where the context has them (a grown context;
    a full prefix check happens only when this fails)."""
    for i in range(max(n - window, 0), n):
        if indexed[i] != context[i]:
            return False
    return n == 0 or n <= window or indexed[0] == context[0]


# ---- earlier requests: the server-wide index ---------------------------------------------------

HISTORY_TOKENS = 262_144  # default bound of the server's index (specchat serve --suffix-history)
BLOCK = 64  # a request is compared with the stored ones in blocks of this many tokens
SEP = -1  # stored after each request: no match reaches back across it, no proposal runs past it


@dataclass
class _Stored:
    """One stored request: where it lies (absolute positions, its SEP included) and the
    prefix hashes it registered."""

    id: int
    start: int
    size: int
    prefixes: list[int]


class SuffixHistory:
    """Earlier requests' prompts and replies (token ids of one target), for the suffix drafter
    to copy from where the current context has no match as long: SuffixDecoding's global tree,
    as the LONG-token table of SuffixIndex over every stored request.

    Bounded: at most `budget` tokens are held; the oldest requests go first. Kept incrementally:
    a request is indexed once, when it ends, and evicting one removes its own entries. A client
    resends the whole conversation each turn: the request's first tokens are compared with the
    stored requests' by chained hashes of BLOCK-token prefixes, and only what follows the longest
    stored prefix is added (with MAX_MATCH tokens before it, so that matches reach back across
    the join), so a conversation of N turns is held about once, not N times."""

    def __init__(self, budget: int = HISTORY_TOKENS) -> None:
        if budget < 0:
            raise ValueError(f"a suffix history holds 0 tokens or more (got {budget})")
        self.budget = budget
        self.tokens = array("i")  # the stored requests, each followed by SEP
        self.base = 0  # absolute position of tokens[0] (what was evicted came before it)
        # hash of LONG tokens -> absolute position(s) they ended at, ascending (one int, or a
        # list once the n-gram occurs again)
        self._table: dict[int, int | list[int]] = {}
        self._stored: deque[_Stored] = deque()
        # chained hash of a request's first k * BLOCK tokens -> the oldest stored request that
        # holds part of them (valid while that one is)
        self._prefixes: dict[int, int] = {}
        self._next_id = 0
        self.added = 0  # tokens ever indexed (what deduplication saved shows beside it)

    def __len__(self) -> int:
        return len(self.tokens)

    def clear(self) -> None:
        self.tokens = array("i")
        self.base = 0
        self._table.clear()
        self._stored.clear()
        self._prefixes.clear()

    @property
    def requests(self) -> int:
        return len(self._stored)

    def add(self, seq: Sequence[int]) -> int:
        """Store a finished request (its prompt and reply, in order); returns how many tokens
        were indexed (0: the store already held it)."""
        if self.budget <= LONG:
            return 0
        hashes = _block_hashes(seq)  # and the whole request's last: an exact resend
        hashes.append(hash((hashes[-1] if hashes else 0, tuple(seq[len(hashes) * BLOCK :]))))
        while True:  # room for what is new, evicting the oldest (which may be what was known)
            known, holder = self._known_prefix(hashes, len(seq))
            if len(seq) - known < LONG:
                return 0  # nothing new worth a match
            part = list(seq[max(known - MAX_MATCH, 0) :])
            whole = len(part) < self.budget
            if not whole:  # larger than the whole store: its end
                part = part[len(part) + 1 - self.budget :]
            if not self._stored or len(self.tokens) + len(part) + 1 <= self.budget:
                break
            self._evict()
        stored = _Stored(self._next_id, self.base + len(self.tokens), len(part) + 1, [])
        self._next_id += 1
        toks = self.tokens
        first = len(toks)
        toks.extend(part)
        toks.append(SEP)
        table = self._table
        for i in range(first + LONG, first + len(part) + 1):
            key = hash(tuple(toks[i - LONG : i]))
            at = self.base + i
            hit = table.get(key)
            if hit is None:
                table[key] = at
            elif isinstance(hit, int):
                table[key] = [hit, at]
            else:
                hit.append(at)
        if whole:  # its prefixes are all stored now: a resend of it adds only what is new
            holder = stored.id if holder is None else holder
            for h in hashes[min(known // BLOCK, len(hashes) - 1) :]:
                self._prefixes[h] = holder
                stored.prefixes.append(h)
        self._stored.append(stored)
        self.added += len(part)
        return len(part)

    def _known_prefix(self, hashes: list[int], size: int) -> tuple[int, int | None]:
        """How many first tokens of a request the store holds (a multiple of BLOCK, or all
        `size`: the last hash is the whole request's), and the oldest stored request they
        depend on."""
        oldest = self._stored[0].id if self._stored else self._next_id
        for j in range(len(hashes) - 1, -1, -1):
            holder = self._prefixes.get(hashes[j])
            if holder is not None and holder >= oldest:
                return (size if j == len(hashes) - 1 else (j + 1) * BLOCK), holder
        return 0, None

    def _evict(self) -> None:
        """Forget the oldest stored request: its n-grams (the first positions of their lists),
        its tokens, the prefixes that needed it."""
        gone = self._stored.popleft()
        toks, table = self.tokens, self._table
        for i in range(LONG, gone.size):
            key = hash(tuple(toks[i - LONG : i]))
            hit = table[key]
            if isinstance(hit, int) or len(hit) == 1:
                del table[key]
            else:
                del hit[0]  # positions are in order: the oldest request's come first
        del toks[: gone.size]
        self.base += gone.size
        oldest = self._stored[0].id if self._stored else self._next_id
        for h in gone.prefixes:
            holder = self._prefixes.get(h)
            if holder is not None and holder < oldest:
                del self._prefixes[h]

    def propose(self, context: Sequence[int], n: int, floor: int = 0) -> SuffixProposal:
        """Up to n tokens continuing the longest stored match of the context's end, if it is
        longer than `floor` tokens (the match the context itself holds)."""
        end = len(context)
        if n <= 0 or end < LONG or floor >= MAX_MATCH:
            return NO_PROPOSAL
        tail = tuple(context[end - LONG :])
        hit = self._table.get(hash(tail))
        if hit is None:
            return NO_PROPOSAL
        ends = [hit] if isinstance(hit, int) else hit[-MAX_CANDIDATES:][::-1]
        toks, base = self.tokens, self.base
        lengths: list[tuple[int, int]] = []
        for at in ends:
            e = at - base
            if tuple(toks[e - LONG : e]) != tail:
                continue  # another n-gram with the same hash
            m = LONG
            while (
                m < MAX_MATCH
                and m < end
                and e - m - 1 >= 0
                and toks[e - m - 1] == context[end - m - 1]
            ):
                m += 1
            lengths.append((m, e))
        if not lengths:
            return NO_PROPOSAL
        best_len, best = max(lengths)
        if best_len <= floor:
            return NO_PROPOSAL
        peers = [e for m, e in lengths if 2 * m >= best_len]
        cap = n if best_len >= FOLLOW_MATCH else math.ceil(ALPHA * best_len)
        return _follow(toks, best, best_len, peers, min(n, cap), from_history=True)


def _block_hashes(seq: Sequence[int]) -> list[int]:
    """Chained hashes of seq's first BLOCK, 2 x BLOCK, ... tokens."""
    out: list[int] = []
    h = 0
    for j in range(len(seq) // BLOCK):
        h = hash((h, tuple(seq[j * BLOCK : (j + 1) * BLOCK])))
        out.append(h)
    return out


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
    decides how much of each proposal is worth a batched pass. With a `history` (the server's
    index of earlier requests) a longer match found there is proposed instead, under a trust
    of its own."""

    kind = DrafterKind.SUFFIX

    def __init__(self, history: SuffixHistory | None = None) -> None:
        self.index = SuffixIndex()
        self.trust = SuffixTrust()
        self.history = history
        self.history_trust = SuffixTrust()  # earlier requests' matches earn their own
        self.cursor_trust = SuffixTrust()  # proposals resumed past a substitution earn their own
        self.counters = DrafterCounters()
        self._match_len = 0  # of the proposal last sent to verification
        self._trust = self.trust  # ...and the trust it answers to
        self.cursor = CopyCursor()

    def reset(self) -> None:
        self.index.truncate(0)
        self.cursor = CopyCursor()

    def begin(self, prompt: Sequence[int]) -> None:
        self.index.sync(prompt, full=True)
        self.cursor = CopyCursor()  # substitutions belong to one reply

    def propose(self, context: Sequence[int], n: int) -> SuffixProposal:
        """The context's own longest match, or the copy cursor's when its run is longer; an
        earlier request's only when it is longer still (and proposes something)."""
        self.index.sync(context, full=False)
        local = self.index.propose(n)
        resumed = self.cursor.resume(self.index.tokens, len(context), n)
        best = resumed if resumed.tokens and resumed.match_len > local.match_len else local
        best = self.cursor.substituted(best)
        if self.history is not None:
            found = self.history.propose(context, n, floor=best.match_len)
            best = found if found.tokens else best
        self.cursor.proposed(best, len(context))
        return best

    def trust_for(self, proposal: SuffixProposal) -> SuffixTrust:
        if proposal.from_history:
            return self.history_trust
        return self.cursor_trust if proposal.via_cursor else self.trust

    def sent(self, proposal: SuffixProposal, n: int) -> None:
        """`n` tokens of `proposal` go to verification (0: none)."""
        self.trust_for(proposal).note_proposal(proposal.match_len, len(proposal.tokens), n)
        if n:
            self._match_len = proposal.match_len
            self._trust = self.trust_for(proposal)

    def accept(self, draft: Draft, accepted: int, round_s: float) -> None:
        """The target kept `accepted` of the proposal last sent."""
        self.counters.accept(len(draft.tokens), accepted, draft.draft_s)
        self._trust.record(self._match_len, len(draft.tokens), accepted)

    def idle(self, round_s: float) -> None:
        pass  # nothing to learn from a round without a proposal


class CopyCursor:
    """Where in the conversation the reply is copying from, kept across a changed token.

    A suffix match ends where the target writes a token of its own (`value` renamed to
    `amount`): the context's end no longer occurs earlier, and matching starts again from a few
    tokens. The cursor remembers where the last proposal came from; next round it lines the
    tokens the context gained up with the earlier text: all equal, copying goes on; only the
    last differs, that token is taken as a substitution, copying resumes right after it, and the
    substitution is applied to later occurrences (a rename changes every one). A substitution
    the target contradicts (it writes the original) is dropped; one followed by a miss was the
    start of new text, not a substitution, and is dropped too. Proposals are verified like every
    other, so a wrong guess costs a shorter pass, never a wrong token."""

    def __init__(self) -> None:
        self.subst: dict[int, int] = {}  # earlier token -> the token the reply writes instead
        self._at: tuple[int, int, int] | None = None  # (source position, context length, run)
        self._fresh: int | None = None  # the substitution made at the last resume
        self._misses = 0

    def proposed(self, proposal: SuffixProposal, context_len: int) -> None:
        """Remember where this round's proposal (sent or not) was found in the conversation."""
        if proposal.start >= 0 and not proposal.from_history and proposal.match_len >= CURSOR_RUN:
            self._at = (proposal.start, context_len, proposal.match_len)
        elif not proposal.via_cursor:
            self._at = None

    def resume(self, toks: Sequence[int], context_len: int, n: int) -> SuffixProposal:
        """The earlier text after the tokens the context gained since the last proposal, when
        those line up with it (the last one may be a substitution)."""
        at, self._at = self._at, None
        if at is None or n <= 0:
            return NO_PROPOSAL
        start, then, run = at
        gained = context_len - then
        if gained <= 0 or start + gained >= then:
            return NO_PROPOSAL  # (a rollback, or the source would run into the new text)
        for i in range(gained):
            source, written = toks[start + i], toks[then + i]
            if written == self.subst.get(source, source):
                continue
            if i < gained - 1:
                return NO_PROPOSAL  # more than the last token differs: not a copy any more
            self._learn(source, written, agreed=i > 0)
            break
        else:
            self._confirm()
        if self._misses >= CURSOR_MISSES:  # the target is writing new text: let go
            if self._fresh is not None:
                self.subst.pop(self._fresh, None)
            self._fresh, self._misses = None, 0
            return NO_PROPOSAL
        begin = start + gained
        tokens = list(toks[begin : min(begin + n, then)])
        return SuffixProposal(
            tokens, min(run, MAX_MATCH), [1.0] * len(tokens), 1, start=begin, via_cursor=True
        )

    def substituted(self, proposal: SuffixProposal) -> SuffixProposal:
        """The proposal with the substitutions learned so far applied."""
        if not self.subst or proposal.from_history or not proposal.tokens:
            return proposal
        tokens = [self.subst.get(t, t) for t in proposal.tokens]
        return dataclasses.replace(proposal, tokens=tokens)

    def _learn(self, source: int, written: int, agreed: bool) -> None:
        if agreed:
            self._confirm()
        elif self._fresh is not None:  # a miss right after a substitution: it was new text
            self.subst.pop(self._fresh, None)
        if self.subst.get(source) is not None and written == source:
            del self.subst[source]  # the target kept the original here
        else:
            self.subst[source] = written
        self._fresh = source
        self._misses = 0 if agreed else self._misses + 1

    def _confirm(self) -> None:
        self._fresh = None
        self._misses = 0
