"""The suffix index and its proposals (pure Python: no model needed)."""

from __future__ import annotations

import random

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
