"""Pure-Python pieces of the engine: transforms, verification maths, text stream, lookup,
adaptive controller, chat template sandbox."""

from __future__ import annotations

import numpy as np
import pytest

from specchat.engine.adaptive import HOPELESS_SHARE, PROBE_SHARE, DraftLengthController
from specchat.engine.drafting import lookup
from specchat.engine.sampling import distribution, sample, top_probability
from specchat.engine.template import ChatTemplate, TemplateError
from specchat.engine.textstream import TextStream
from specchat.engine.types import GenerationSettings, Message
from specchat.engine.verify import verify_greedy, verify_sampling


def test_transforms():
    logits = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05], dtype=np.float32))
    p = distribution(logits, GenerationSettings(temperature=1.0))
    assert p == pytest.approx([0.5, 0.2, 0.15, 0.1, 0.05], rel=1e-5)
    p = distribution(logits, GenerationSettings(temperature=1.0, top_k=2))
    assert p == pytest.approx([0.5 / 0.7, 0.2 / 0.7, 0, 0, 0], rel=1e-5)
    p = distribution(logits, GenerationSettings(temperature=1.0, top_p=0.8))
    assert np.count_nonzero(p) == 3  # 0.5 + 0.2 < 0.8 <= 0.85
    p = distribution(logits, GenerationSettings(temperature=1.0, min_p=0.3))
    assert np.count_nonzero(p) == 2  # keeps p >= 0.15
    hot = distribution(logits, GenerationSettings(temperature=10.0))
    assert hot.max() < 0.25
    assert top_probability(logits) == pytest.approx(0.5, rel=1e-5)


def test_sample_follows_distribution():
    rng = np.random.default_rng(0)
    p = np.array([0.1, 0.0, 0.6, 0.3])
    counts = np.bincount([sample(p, rng) for _ in range(20000)], minlength=4) / 20000
    assert counts == pytest.approx(p, abs=0.015)


def test_verify_greedy():
    rows = [np.array([0, 5, 1.0]), np.array([9, 0, 1.0]), np.array([0, 0, 3.0])]
    v = verify_greedy(lambda i: rows[i], [1, 0])
    assert (v.accepted, v.next_token) == (2, 2)
    v = verify_greedy(lambda i: rows[i], [1, 2])
    assert (v.accepted, v.next_token) == (1, 0)
    v = verify_greedy(lambda i: rows[i], [2, 0])
    assert (v.accepted, v.next_token) == (0, 1)


@pytest.mark.parametrize("deterministic", [False, True])
def test_speculative_sampling_keeps_target_distribution(deterministic):
    """Leviathan/Chen acceptance: the first emitted token is distributed as p, whatever q is."""
    rng = np.random.default_rng(1)
    settings = GenerationSettings(temperature=1.0)
    p_logits = np.log(np.array([0.05, 0.45, 0.3, 0.2]))
    q = np.array([0.6, 0.1, 0.1, 0.2])
    counts = np.zeros(4)
    n = 40000
    for _ in range(n):
        x = sample(q, rng) if not deterministic else 0
        v = verify_sampling(lambda i: p_logits, [x], None if deterministic else [q], settings, rng)
        counts[x if v.accepted else v.next_token] += 1
    assert counts / n == pytest.approx(np.exp(p_logits), abs=0.01)


def test_text_stream_holds_back_stop_prefixes():
    s = TextStream(stop=("END",))
    assert s.feed(b"hello E") == "hello "
    assert s.feed(b"N") == ""
    assert s.feed(b"X") == "ENX"
    assert s.feed(b" bye EN") == " bye "
    assert s.feed(b"D and more") == ""
    assert s.stopped and s.text == "hello ENX bye "


def test_text_stream_utf8_split_across_tokens():
    s = TextStream()
    snowman = "☃".encode()
    assert s.feed(snowman[:1]) == ""
    assert s.feed(snowman[1:]) == "☃"
    assert s.feed(b"\xf0\x9f") == ""
    assert s.feed(b"\x98\x80") == "😀"


def test_lookup_proposes_what_followed_the_last_ngram():
    ctx = [1, 2, 3, 4, 5, 9, 9, 1, 2, 3]
    assert lookup(ctx, 3, 4, 1) == [4, 5, 9]
    assert lookup([7, 8, 9], 3, 4, 1) == []
    assert lookup([5, 6, 5], 2, 2, 1) == [6, 5]


def test_controller_switches_off_when_draft_does_not_pay():
    c = DraftLengthController(draft_max=8)
    assert c.next_k(8) == 0  # measures the target alone first
    c.record(drafted=0, accepted=0, draft_s=0, verify_s=0.010, round_s=0.010)
    k = c.next_k(8)
    assert k > 0  # then explores
    for _ in range(30):  # expensive draft, poor agreement, verify cost grows with batch
        c.record(
            drafted=k,
            accepted=k // 3,
            draft_s=0.004 * k,
            verify_s=0.010 * (1 + 0.5 * k),
            round_s=0.004 * k + 0.010 * (1 + 0.5 * k),
        )
        k = c.next_k(8) or 1
    assert c.best_k(8) == 0
    assert c.next_k(8) == 0 and c.switched_off


def test_controller_drafts_long_when_draft_is_cheap_and_right():
    c = DraftLengthController(draft_max=8)
    c.record(drafted=0, accepted=0, draft_s=0, verify_s=0.010, round_s=0.010)
    for _ in range(40):
        k = c.next_k(8)
        c.record(
            drafted=k,
            accepted=k,
            draft_s=0.0005 * k,
            verify_s=0.010 + 0.001 * k,
            round_s=0.0105 + 0.0015 * k,
        )
    assert c.next_k(8) >= 6


def _seeded(t_draft: float) -> DraftLengthController:
    """Costs as measured at load time: a 10 ms target token, batches growing 0.5 token/token."""
    c = DraftLengthController(draft_max=6)
    c.seed({1: 0.010, 3: 0.020, 7: 0.040}, t_draft=t_draft, t_catchup=0.002)
    return c


def test_controller_stops_exploring_once_even_optimism_predicts_no_gain():
    # pays only at high acceptance (at 100%: 1.2x at k=6); not hopeless, so it explores
    c = _seeded(t_draft=0.003)
    assert not c.hopeless(6) and c.expects_to_draft()
    assert c.next_k(6) == 2
    c.record(drafted=2, accepted=2, draft_s=0.006, verify_s=0.020, round_s=0.026)
    assert c.next_k(6) == 6  # all accepted: keep exploring
    c.record(drafted=6, accepted=1, draft_s=0.018, verify_s=0.040, round_s=0.058)
    assert c.next_k(6) == 0 and c.switched_off  # a rejection early on: stop
    assert not c.expects_to_draft()
    assert "acceptance" in c.reason()


def test_controller_explores_only_where_the_drafters_typical_acceptance_pays():
    """A cross-vocabulary draft (typically ~50% accepted) that would pay only near 100% is not
    explored at all: exploring would cost its whole prompt evaluation."""
    c = DraftLengthController(draft_max=6, typical_acceptance=0.6)
    c.seed({1: 0.010, 3: 0.020, 7: 0.040}, t_draft=0.003, t_catchup=0.002)
    assert not c.hopeless(6) and not c.expects_to_draft()
    assert c.next_k(6) == 0 and "not expected to pay" in c.reason()
    gpu = DraftLengthController(draft_max=6, typical_acceptance=0.6)  # verify ~ one token
    gpu.seed({1: 0.010, 3: 0.011, 7: 0.013}, t_draft=0.001, t_catchup=0.0002)
    assert gpu.expects_to_draft() and gpu.next_k(6) == 2


def test_controller_keeps_exploring_a_draft_that_agrees():
    c = _seeded(t_draft=0.003)
    ks = []
    for _ in range(12):
        k = c.next_k(6)
        ks.append(k)
        c.record(drafted=k, accepted=k, draft_s=0.003 * k, verify_s=0.010 + 0.005 * k,
                 round_s=0.010 + 0.008 * k)
    assert ks[:3] == [2, 6, 3] and min(ks[3:]) >= 1  # explored all three, then kept drafting


def test_controller_probes_only_within_its_time_budget():
    c = _seeded(t_draft=0.003)
    assert c.next_k(6) == 2  # explores; the draft is rejected at once: speculation goes off
    c.record(drafted=2, accepted=0, draft_s=0.006, verify_s=0.020, round_s=0.026)
    asked: list[int] = []

    def lag() -> int:
        asked.append(1)
        return 100  # 100 tokens to catch up: 0.2 s at 2 ms each

    probe = c.probe_cost(2, 100)
    assert probe == pytest.approx(2 * 0.003 + 0.020 - 0.010 + 100 * 0.002)
    rounds = 0
    while c.next_k(6, lag) == 0:
        c.record(drafted=0, accepted=0, draft_s=0, verify_s=0.010, round_s=0.010)
        rounds += 1
        assert rounds < 10_000
    # the probe came once the off time paid for it at PROBE_SHARE, not before
    assert rounds == pytest.approx(probe / (0.010 * PROBE_SHARE), abs=1.5)
    # the lag (costly to work out for some drafters) was asked only once the cheap test passed
    assert 0 < len(asked) < rounds
    # the budget starts again after a probe
    c.record(drafted=2, accepted=0, draft_s=0.006, verify_s=0.020, round_s=0.026)
    assert c.next_k(6, lag) == 0


def test_controller_probes_a_hopeless_draft_even_more_rarely():
    c = _seeded(t_draft=0.012)  # costs more than the target: not even a perfect draft pays
    assert c.hopeless(6) and "not even a perfect draft" in c.reason()
    rounds = 0
    while c.next_k(6, lambda: 0) == 0:
        c.record(drafted=0, accepted=0, draft_s=0, verify_s=0.010, round_s=0.010)
        rounds += 1
    assert rounds == pytest.approx(c.probe_cost(2, 0) / (0.010 * HOPELESS_SHARE), abs=1.5)


def test_controller_learns_catch_up_cost_from_long_catch_ups_only():
    c = _seeded(t_draft=0.006)
    c.record(drafted=2, accepted=2, draft_s=0.01, verify_s=0.02, round_s=0.03,
             catchup_s=0.5, catchup_tokens=100)
    assert c.t_catchup == pytest.approx(0.002 + 0.25 * (0.005 - 0.002))
    before = c.t_catchup
    c.record(drafted=2, accepted=2, draft_s=0.01, verify_s=0.02, round_s=0.03,
             catchup_s=0.5, catchup_tokens=2)  # steady-state catch-up: part of drafting
    assert c.t_catchup == before


def test_controller_fixed_length_when_not_adaptive():
    c = DraftLengthController(draft_max=5, adaptive=False)
    assert c.next_k(8) == 5 and c.next_k(3) == 3


def test_template_renders_in_sandbox():
    t = ChatTemplate(
        "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ bos_token }}",
        bos_token="<s>",
    )
    assert t.render([Message("user", "hi")]) == "[user]hi<s>"
    evil = ChatTemplate("{{ messages.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError):
        evil.render([Message("user", "hi")])
    with pytest.raises(TemplateError, match="nope"):
        ChatTemplate("{{ raise_exception('nope') }}").render([])
