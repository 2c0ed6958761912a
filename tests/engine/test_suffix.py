"""The suffix index and its proposals (pure Python: no model needed)."""

from __future__ import annotations

import random

import pytest

from specchat.engine.speculative.suffix import ALPHA, FOLLOW_MATCH, LONG, SuffixDrafter, SuffixIndex


def index_of(tokens: list[int]) -> SuffixIndex:
    idx = SuffixIndex()
    idx.extend(tokens)
    return idx


def test_proposes_what_followed_the_longest_match() -> None:
    # "1 2 3 4 5 6 7" appears once; "9 4 5 6 8" once; the context ends with "2 3 4 5 6"
    text = [1, 2, 3, 4, 5, 6, 7, 0, 9, 4, 5, 6, 8, 0, 2, 3, 4, 5, 6]
    p = index_of(text).propose(4)
    assert p.tokens[:1] == [7]  # the longer match (2 3 4 5 6) wins over the recent (4 5 6)
    assert p.match_len == 5


def test_most_recent_match_wins_a_tie() -> None:
    text = [1, 2, 3, 0, 1, 2, 4, 0, 1, 2]
    p = index_of(text).propose(1)
    assert p.tokens == [4]


def test_no_match_no_proposal() -> None:
    assert index_of([1, 2, 3, 4]).propose(4).tokens == []
    assert index_of([]).propose(4).tokens == []
    assert index_of([1, 2, 1, 2]).propose(0).tokens == []


def test_length_follows_match_length() -> None:
    body = list(range(100, 140))
    short = index_of([*body, 0, 100, 101]).propose(32)  # 2 tokens matched
    long = index_of([*body, 0, *body[:10]]).propose(32)  # 10 tokens matched
    assert short.match_len == 2 and len(short.tokens) <= ALPHA * 2 + 1
    assert long.match_len == 10 and len(long.tokens) == 15
    assert long.tokens == body[10:25]


def test_proposal_stops_where_matches_disagree() -> None:
    # three equally long earlier matches of "5 6": two continue 7 8, one continues 7 9
    text = [1, 5, 6, 7, 8, 0, 2, 5, 6, 7, 9, 0, 3, 5, 6, 7, 8, 0, 4, 5, 6]
    p = index_of(text).propose(3)
    assert p.matches == 3
    assert p.tokens[0] == 7 and p.support[0] == 1.0
    assert p.tokens == [7, 8, 0] and abs(p.support[1] - 2 / 3) < 1e-9
    # with the disagreeing continuation in the majority, nothing past the 7 is proposed
    text2 = [1, 5, 6, 7, 9, 0, 2, 5, 6, 7, 8, 0, 3, 5, 6, 7, 9, 0, 4, 5, 6, 7, 1, 0, 8, 5, 6]
    p2 = index_of(text2).propose(3)
    assert p2.tokens[0] == 7 and len(p2.tokens) <= 2


def test_truncate_is_the_inverse_of_extend() -> None:
    rng = random.Random(0)
    tokens = [rng.randrange(6) for _ in range(300)]
    idx = index_of(tokens)
    idx.truncate(120)
    fresh = index_of(tokens[:120])
    assert idx.tokens == fresh.tokens
    assert idx._tables == fresh._tables
    for n in (1, 3, 8):
        assert idx.propose(n) == fresh.propose(n)


def test_sync_follows_a_rollback_and_a_new_prompt() -> None:
    rng = random.Random(1)
    a = [rng.randrange(5) for _ in range(200)]
    b = a[:150] + [rng.randrange(5) for _ in range(80)]
    drafter = SuffixDrafter()
    drafter.begin(a)
    drafter.propose([*a, 1, 2], 4)  # the reply grew
    drafter.begin(b)  # a new turn that shares only a prefix
    assert drafter.index.tokens == b
    assert drafter.index._tables == index_of(b)._tables


def test_long_match_over_a_long_context() -> None:
    rng = random.Random(2)
    code = [rng.randrange(50_000) for _ in range(32_000)]
    idx = index_of(code)
    start = 20_000
    idx.extend(code[start : start + LONG + 4])
    p = idx.propose(16)
    assert p.tokens == code[start + LONG + 4 : start + LONG + 4 + 15]
    assert p.match_len == LONG + 4


def test_a_long_match_is_followed_as_far_as_the_earlier_text_agrees() -> None:
    """Below FOLLOW_MATCH a proposal is at most ALPHA x the match; from there it runs on (the
    trust, not the index, decides how much of it is worth a pass)."""
    text = list(range(100, 200))
    index = SuffixIndex()
    index.extend([*text, 7, *text[:FOLLOW_MATCH - 2]])
    short = index.propose(64)
    assert short.match_len == FOLLOW_MATCH - 2 and len(short.tokens) <= ALPHA * short.match_len
    index.extend(text[FOLLOW_MATCH - 2 : FOLLOW_MATCH])
    long = index.propose(64)
    assert long.match_len == FOLLOW_MATCH and long.tokens == text[FOLLOW_MATCH : FOLLOW_MATCH + 64]


# ---- the server-wide index of earlier requests (SuffixHistory) ---------------------------------


def _words(seed: int, n: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(1000, 30000) for _ in range(n)]


def test_a_continuation_learned_only_from_an_earlier_request_is_proposed() -> None:
    from specchat.engine.speculative.suffix import SuffixHistory

    earlier = _words(1, 300)  # an earlier request: its prompt and reply
    history = SuffixHistory(10_000)
    assert history.add(earlier) == 300
    drafter = SuffixDrafter(history)
    prompt = _words(2, 50) + earlier[100:120]  # a new conversation quotes 20 of its tokens
    drafter.begin(prompt)
    p = drafter.propose(prompt, 16)
    assert p.from_history and p.match_len == 20
    assert p.tokens == earlier[120:136]  # what followed there
    assert drafter.trust_for(p) is drafter.history_trust
    without = SuffixDrafter()
    without.begin(prompt)
    assert without.propose(prompt, 16).tokens == []  # the conversation alone has nothing


def test_the_conversation_s_own_match_wins_when_it_is_as_long() -> None:
    from specchat.engine.speculative.suffix import SuffixHistory

    shared = _words(3, 30)
    history = SuffixHistory(10_000)
    history.add([*shared, 7, 7, 7, 7, 7, 7, 7, 7])  # earlier: the shared text, then sevens
    context = [*shared, 5, 5, 5, 5, 5, 5, 5, 5, 0, *shared]  # here: the same text, then fives
    drafter = SuffixDrafter(history)
    drafter.begin(context)
    p = drafter.propose(context, 8)
    assert not p.from_history and p.tokens[:3] == [5, 5, 5]
    # a longer match in the history than in the conversation: the history's
    longer = [*_words(4, 40), *shared[10:], 1, 2, 3]  # the conversation has 20 of its 30 tokens
    history.add([*_words(4, 40), *shared[10:], 1, 2, 3, 4, 5, 6, 7, 8])
    drafter2 = SuffixDrafter(history)
    context2 = [*shared, 9, 9, *_words(5, 10), *longer[-25:]]
    drafter2.begin(context2)
    p2 = drafter2.propose(context2, 4)
    assert p2.from_history and p2.tokens == [4, 5, 6, 7]


def test_a_resent_conversation_is_stored_once() -> None:
    from specchat.engine.speculative.suffix import BLOCK, MAX_MATCH, SuffixHistory

    history = SuffixHistory(100_000)
    turn = _words(6, 1000)
    assert history.add(turn) == 1000
    assert history.add(turn) == 0  # the same request again: nothing new
    longer = [*turn, *_words(7, 500)]  # the next turn resends it all and adds 500 tokens
    added = history.add(longer)
    known = len(turn) // BLOCK * BLOCK
    assert added == len(longer) - known + MAX_MATCH < 700
    # the join is covered: a match that spans it is found
    drafter = SuffixDrafter(history)
    context = [*_words(8, 20), *longer[990:1010]]
    drafter.begin(context)
    p = drafter.propose(context, 5)
    assert p.from_history and p.tokens == longer[1010:1015]


def test_the_history_is_bounded_and_evicts_the_oldest_requests() -> None:
    from specchat.engine.speculative.suffix import SuffixHistory

    history = SuffixHistory(2_000)
    requests = [_words(100 + i, 700) for i in range(10)]
    for r in requests:
        history.add(r)
        assert len(history) <= 2_000
    assert history.requests == 2  # 2 x 701 fit, 3 do not
    rebuilt = SuffixHistory(2_000)
    for r in requests[-2:]:
        rebuilt.add(r)
    shifted = {
        k: ([p - history.base for p in v] if isinstance(v, list) else v - history.base)
        for k, v in history._table.items()
    }
    assert shifted == rebuilt._table  # eviction left exactly what indexing the rest builds
    assert list(history.tokens) == list(rebuilt.tokens)
    # an evicted request is no longer proposed; a kept one is
    for r, found in ((requests[0], False), (requests[-1], True)):
        drafter = SuffixDrafter(history)
        context = [1, 2, *r[200:230]]
        drafter.begin(context)
        assert drafter.propose(context, 4).from_history is found
    # a request larger than the whole budget keeps its end
    history.add(_words(200, 5_000))
    assert len(history) <= 2_000 and history.requests == 1
    assert SuffixHistory(0).add(requests[0]) == 0


def test_a_resend_after_its_first_part_was_evicted_is_stored_again() -> None:
    from specchat.engine.speculative.suffix import SuffixHistory

    history = SuffixHistory(3_500)
    first = _words(300, 1_000)
    history.add(first)
    history.add(_words(301, 1_500))
    second = [*first, *_words(302, 600)]
    history.add(second)  # its first 1000 tokens are held (by the oldest request): +~600
    assert history.requests == 3
    history.add(_words(303, 500))  # evicts the oldest: `first`'s tokens are gone
    added = history.add([*second, *_words(304, 100)])
    assert added > 1_000  # the whole conversation again, not just its last 100 tokens


def test_a_resend_whose_start_must_make_room_is_stored_whole() -> None:
    """Making room for a resend's new part can evict the request holding its start: then the
    whole conversation is stored again, not a tail whose start is gone."""
    from specchat.engine.speculative.suffix import SuffixHistory

    history = SuffixHistory(2_000)
    first = _words(400, 1_200)
    history.add(first)
    added = history.add([*first, *_words(401, 900)])  # 900 new do not fit beside the 1200
    assert added == 2_000 - 1  # all of it, (its end, as it exceeds the store)
    assert history.requests == 1


# ---- the copy cursor: an edit that copies a long stretch with a word changed -----------------


def replay(prompt: list[int], reply: list[int], n: int = 32) -> tuple[int, list[list[int]]]:
    """Greedy verification of the suffix drafter's proposals against a known reply: the passes
    it took and every proposal made."""
    from specchat.engine.speculative.suffix import SuffixDrafter

    drafter = SuffixDrafter()
    drafter.begin(prompt)
    out: list[int] = []
    passes, proposals = 0, []
    while len(out) < len(reply):
        proposal = drafter.propose(prompt + out, n).tokens
        proposals.append(proposal)
        kept = 0
        while kept < len(proposal) and len(out) + kept < len(reply):
            if proposal[kept] != reply[len(out) + kept]:
                break
            kept += 1
        out += reply[len(out) : len(out) + kept + 1]  # the kept drafts and the target's token
        passes += 1
    return passes, proposals


def source_file(length: int, renamed: int) -> list[int]:
    """Distinct-looking 'code' tokens in which `renamed` comes back every 20 tokens."""
    return [renamed if i % 20 == 12 else 1000 + (i * 37) % 997 for i in range(length)]


def test_a_rename_is_copied_past_each_changed_token_and_learned_for_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from specchat.engine.speculative import suffix

    old, new = 7, 99
    source = source_file(300, old)
    reply = [new if t == old else t for t in source]
    passes, proposals = replay([5, 6, *source, 8], reply)
    renamed = [p for p in proposals if new in p]
    assert renamed and not any(old in p for p in proposals[proposals.index(renamed[0]) :])
    # without the cursor every rename restarts matching from a few tokens
    monkeypatch.setattr(suffix, "CURSOR_RUN", 10**6)
    passes_without, _ = replay([5, 6, *source, 8], reply)
    assert passes * 2 <= passes_without, (passes, passes_without)


def test_new_text_after_a_copy_lets_the_cursor_go_and_keeps_no_substitution() -> None:
    from specchat.engine.speculative.suffix import CURSOR_MISSES, SuffixDrafter

    source = source_file(120, 7)
    prompt = [5, 6, *source, 8]
    drafter = SuffixDrafter()
    drafter.begin(prompt)
    out = source[:60]  # copied so far
    drafter.propose(prompt + out, 32)
    fresh = [3000 + i for i in range(CURSOR_MISSES + 2)]  # then text the conversation never had
    for token in fresh:
        out = [*out, token]
        proposal = drafter.propose(prompt + out, 32)
    assert proposal.tokens == [] and not proposal.via_cursor
    assert drafter.cursor.subst == {}


def test_a_substitution_the_target_contradicts_is_dropped() -> None:
    from specchat.engine.speculative.suffix import CopyCursor

    cursor = CopyCursor()
    cursor.subst[7] = 99
    toks = [1, 2, 7, 3, 4, 1, 2, 7]  # the source: 0..4; the reply copies it and keeps 7
    cursor._at = (0, 5, 16)  # a proposal of the source's start was made at context length 5
    proposal = cursor.resume(toks, 8, 4)
    assert 7 not in cursor.subst  # the target wrote the original where 99 was expected
    assert proposal.tokens == [3, 4] and proposal.via_cursor
